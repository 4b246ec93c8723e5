//! Twilio's paging: `PageSize`, `Page`, `PageToken` in, the `meta` envelope out.
//!
//! Page tokens are keyset positions (the sequence number of the item at the page's edge), made
//! opaque. A token stays correct while items are added or removed elsewhere: walking
//! `next_page_url` over a stable history yields every item once, in order, however much arrives
//! meanwhile at the end.
use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::form::Params;
use crate::domain::{Collection, Order};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Items after the token's position, in the walk order.
    Next,
    /// Items before it.
    Previous,
}

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: usize,
    pub page: u64,
    pub order: Order,
    token: Option<(Direction, u64)>,
}

impl PageRequest {
    pub fn parse(q: &Params, max: usize, default: usize) -> Result<PageRequest, ApiError> {
        let size = match q.get("PageSize") {
            None | Some("") => default.min(max),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => return Err(ApiError::invalid(format!("PageSize must be an integer from 1 to {max}; got {v:?}"))),
            },
        };
        let page = q.u64("Page")?.unwrap_or(0);
        let order = match q.get("Order") {
            None | Some("") | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(v) => return Err(ApiError::invalid(format!("Order must be asc or desc; got {v:?}"))),
        };
        let token = match q.get("PageToken") {
            None | Some("") => None,
            Some(t) => {
                Some(decode_token(t, order).ok_or_else(|| ApiError::invalid(format!("PageToken {t:?} is not valid for this list")))?)
            }
        };
        Ok(PageRequest { size, page, order, token })
    }

    /// Selects this page from any keyset source: `fetch(after, size, order)` returns up to
    /// `size` items strictly after `after` in `order`, and whether more follow.
    pub fn select<T>(&self, fetch: impl Fn(Option<u64>, usize, Order) -> (Vec<(u64, T)>, bool)) -> PageSlice<T> {
        match self.token {
            None | Some((Direction::Next, _)) => {
                let after = self.token.map(|t| t.1);
                let (items, has_more) = fetch(after, self.size, self.order);
                PageSlice {
                    items,
                    has_next: has_more,
                    has_previous: after.is_some(),
                }
            }
            Some((Direction::Previous, before)) => {
                let reversed = match self.order {
                    Order::Asc => Order::Desc,
                    Order::Desc => Order::Asc,
                };
                let (mut items, has_more_before) = fetch(Some(before), self.size, reversed);
                items.reverse();
                PageSlice {
                    items,
                    has_next: true,
                    has_previous: has_more_before,
                }
            }
        }
    }

    /// Keyset selection over a collection.
    pub fn select_from<'a, T: crate::domain::collection::Keyed>(&self, c: &'a Collection<T>) -> PageSlice<&'a T> {
        self.select(|after, size, order| {
            let w = c.page_after(after, size, order);
            (w.items, w.has_more)
        })
    }

    /// Keyset selection over an already filtered list sorted by sequence number.
    pub fn select_sorted<T: Clone>(&self, sorted: &[(u64, T)]) -> PageSlice<T> {
        self.select(|after, size, order| {
            let v: Vec<(u64, T)> = match order {
                Order::Asc => {
                    let start = after.map_or(0, |a| sorted.partition_point(|(s, _)| *s <= a));
                    sorted[start..].iter().take(size + 1).cloned().collect()
                }
                Order::Desc => {
                    let end = after.map_or(sorted.len(), |a| sorted.partition_point(|(s, _)| *s < a));
                    sorted[..end].iter().rev().take(size + 1).cloned().collect()
                }
            };
            let more = v.len() > size;
            (v.into_iter().take(size).collect(), more)
        })
    }
}

pub struct PageSlice<T> {
    pub items: Vec<(u64, T)>,
    pub has_next: bool,
    pub has_previous: bool,
}

fn encode_token(dir: Direction, order: Order, seq: u64) -> String {
    let d = match dir {
        Direction::Next => 'A',
        Direction::Previous => 'B',
    };
    let o = match order {
        Order::Asc => 'a',
        Order::Desc => 'd',
    };
    format!(
        "P{d}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{o}{seq}"))
    )
}

fn decode_token(t: &str, order: Order) -> Option<(Direction, u64)> {
    let dir = match t.get(..2)? {
        "PA" => Direction::Next,
        "PB" => Direction::Previous,
        _ => return None,
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.get(2..)?).ok()?;
    let raw = std::str::from_utf8(&raw).ok()?;
    let (o, seq) = raw.split_at_checked(1)?;
    let expected = match order {
        Order::Asc => "a",
        Order::Desc => "d",
    };
    (o == expected).then_some(())?;
    Some((dir, seq.parse().ok()?))
}

/// Builds the list envelope `{ key: [...], meta: {...} }` as a `Value`. `list_url` is the
/// absolute URL of the list; `extra` are the filters to keep in page URLs (e.g. `Order`,
/// `Identity`).
pub fn envelope<T>(
    key: &str,
    list_url: &str,
    extra: &[(&str, String)],
    req: &PageRequest,
    slice: &PageSlice<T>,
    items: Vec<Value>,
) -> Value {
    serde_json::to_value(page(key, list_url, extra, req, slice, items)).unwrap_or(Value::Null)
}

/// The list envelope as a serializable value: a hot list can serialize its items straight into
/// the response (views borrowing the domain state) instead of building a `Value` tree first.
pub fn page<'k, T, I: Serialize>(
    key: &'k str,
    list_url: &str,
    extra: &[(&str, String)],
    req: &PageRequest,
    slice: &PageSlice<T>,
    items: Vec<I>,
) -> Envelope<'k, I> {
    let query = |page: u64, token: Option<String>| {
        let mut pairs: Vec<(&str, String)> = extra.to_vec();
        pairs.push(("PageSize", req.size.to_string()));
        pairs.push(("Page", page.to_string()));
        if let Some(t) = token {
            pairs.push(("PageToken", t));
        }
        format!("{list_url}?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
    };
    let current_token = req.token.map(|(d, s)| encode_token(d, req.order, s));
    let next = match (slice.has_next, slice.items.last()) {
        (true, Some((seq, _))) => Some(query(req.page + 1, Some(encode_token(Direction::Next, req.order, *seq)))),
        _ => None,
    };
    let previous = match (slice.has_previous, slice.items.first()) {
        (true, Some((seq, _))) => Some(query(
            req.page.saturating_sub(1),
            Some(encode_token(Direction::Previous, req.order, *seq)),
        )),
        _ => None,
    };
    Envelope {
        key,
        items,
        meta: Meta {
            page: req.page,
            page_size: req.size,
            first_page_url: query(0, None),
            previous_page_url: previous,
            url: query(req.page, current_token),
            next_page_url: next,
            key,
        },
    }
}

/// `{ key: items, meta }` (see [`page`]).
pub struct Envelope<'k, I> {
    key: &'k str,
    items: Vec<I>,
    meta: Meta<'k>,
}

#[derive(Serialize)]
struct Meta<'k> {
    page: u64,
    page_size: usize,
    first_page_url: String,
    previous_page_url: Option<String>,
    url: String,
    next_page_url: Option<String>,
    key: &'k str,
}

impl<I: Serialize> Serialize for Envelope<'_, I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry(self.key, &self.items)?;
        m.serialize_entry("meta", &self.meta)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_other_orders() {
        let t = encode_token(Direction::Next, Order::Asc, 42);
        assert_eq!(decode_token(&t, Order::Asc), Some((Direction::Next, 42)));
        assert_eq!(decode_token(&t, Order::Desc), None);
        assert_eq!(decode_token("PAgarbage!", Order::Asc), None);
        assert_eq!(decode_token("", Order::Asc), None);
    }
}
