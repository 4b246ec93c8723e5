//! Paging through message histories by following `meta.next_page_url` and
//! `meta.previous_page_url`, while messages are appended and deleted between page fetches.
//!
//! What "no duplicates, no gaps" means when the history changes during a walk:
//! - indexes come in strictly increasing (asc) or decreasing (desc) order across the whole
//!   walk, so nothing is seen twice;
//! - every message a page shows exists when that page is fetched, with its current body;
//! - every message that existed when the walk started and was never deleted is seen;
//! - messages appended during the walk are seen exactly when the walk heads towards the end of
//!   the history (forward in `asc`, backward in `desc`), and never otherwise;
//! - on a history that does not change, a backward walk returns the forward walk's pages, in
//!   reverse, with the same page numbers.
//!
//! One server serves every case of a property; each case has its own conversation. The
//! starting history is written through the domain (fast); changes during the walk go through
//! the REST API like a second client's would.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rehearsal_mock_server::MockServer;
use rehearsal_mock_server::domain::Cause;
use rehearsal_mock_server::domain::message::NewMessage;
use rehearsal_mock_server::domain::service::AddMessage;
use serde_json::Value;

use crate::support::{ACCOUNT_SID, Api, expect, items, start};

/// A whole case (setup, walks, checks) must finish within this.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Following `next_page_url`.
    Forward,
    /// Following `previous_page_url`.
    Backward,
}

/// What another client does between two page fetches.
#[derive(Debug, Clone)]
struct Between {
    appends: u8,
    /// Messages deleted, chosen among those that exist at the time (seen or not).
    deletes: Vec<Index>,
    /// Also delete the message the page token points at (the page's edge), if it still exists.
    delete_edge: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    history: usize,
    page_size: usize,
    order: Order,
    between: Vec<Between>,
}

fn between() -> impl Strategy<Value = Between> {
    (0u8..3, prop::collection::vec(any::<Index>(), 0..3), prop::bool::weighted(0.2)).prop_map(|(appends, deletes, delete_edge)| Between {
        appends,
        deletes,
        delete_edge,
    })
}

/// Many small pages and a few big ones; long and short histories.
fn plan(changes: bool) -> impl Strategy<Value = Plan> {
    let history = prop_oneof![0usize..=12, 0usize..=300];
    let page_size = prop_oneof![1usize..=8, 1usize..=100];
    let order = prop_oneof![Just(Order::Asc), Just(Order::Desc)];
    let steps = if changes { 0usize..40 } else { 0usize..1 };
    (history, page_size, order, prop::collection::vec(between(), steps)).prop_map(|(history, page_size, order, between)| Plan {
        history,
        page_size,
        order,
        between,
    })
}

/// The test's model of one conversation's history.
struct History {
    conversation: String,
    /// index → body, for every message that exists now.
    existing: BTreeMap<u64, String>,
    appended: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
}

impl History {
    /// A new conversation with `n` messages (indexes `0..n`, bodies `m{index}`).
    async fn create(server: &MockServer, api: &Api, n: usize) -> History {
        let conv = expect(201, api.post("/v1/Conversations", &[("FriendlyName", "paging")]).await);
        let conversation = conv["sid"].as_str().expect("sid").to_owned();
        let account = server.domain().account(ACCOUNT_SID).expect("the seeded account");
        for i in 0..n {
            let message = NewMessage {
                author: Some("alice".into()),
                body: Some(format!("m{i}")),
                ..Default::default()
            };
            let change = AddMessage {
                conversation: conversation.clone(),
                message,
            };
            account.perform(&Cause::api(false), None, change).await.expect("a message is added");
        }
        let existing = (0..n as u64).map(|i| (i, format!("m{i}"))).collect();
        History {
            conversation,
            existing,
            appended: BTreeSet::new(),
            deleted: BTreeSet::new(),
        }
    }

    fn list_url(&self, page_size: usize, order: Order) -> String {
        let order = match order {
            Order::Asc => "",
            Order::Desc => "&Order=desc",
        };
        format!("/v1/Conversations/{}/Messages?PageSize={page_size}{order}", self.conversation)
    }

    async fn append(&mut self, api: &Api) {
        let body = format!("a{}", self.appended.len());
        let m = expect(
            201,
            api.post(&format!("/v1/Conversations/{}/Messages", self.conversation), &[("Body", &body)])
                .await,
        );
        let index = m["index"].as_u64().expect("index");
        assert!(
            self.existing.keys().chain(&self.deleted).all(|i| *i < index),
            "appended message {index} does not come after every earlier index"
        );
        self.existing.insert(index, body);
        self.appended.insert(index);
    }

    async fn delete(&mut self, api: &Api, index: u64) {
        expect(
            204,
            api.delete(&format!("/v1/Conversations/{}/Messages/{index}", self.conversation))
                .await,
        );
        self.existing.remove(&index);
        self.deleted.insert(index);
    }

    async fn apply(&mut self, api: &Api, step: &Between, edge: Option<u64>) {
        for _ in 0..step.appends {
            self.append(api).await;
        }
        for pick in &step.deletes {
            if self.existing.is_empty() {
                break;
            }
            let index = *self.existing.keys().nth(pick.index(self.existing.len())).expect("in range");
            self.delete(api, index).await;
        }
        if let Some(edge) = edge.filter(|e| step.delete_edge && self.existing.contains_key(e)) {
            self.delete(api, edge).await;
        }
    }
}

/// One fetched page.
#[derive(Debug)]
struct Page {
    url: String,
    page: u64,
    indexes: Vec<u64>,
    next: Option<String>,
    previous: Option<String>,
}

fn link(meta: &Value, name: &str) -> Option<String> {
    meta[name].as_str().map(str::to_owned)
}

/// Fetches `url`, reached by following a link in `direction`, and checks the page against the
/// model as it is now.
async fn fetch(api: &Api, history: &History, url: &str, direction: Direction, size: usize, order: Order) -> Result<Page, TestCaseError> {
    let body = expect(200, api.get(url).await);
    let meta = &body["meta"];
    prop_assert_eq!(&meta["key"], "messages");
    prop_assert_eq!(meta["page_size"].as_u64(), Some(size as u64));
    let mut indexes = Vec::new();
    for m in items(&body) {
        let index = m["index"].as_u64().expect("index");
        let expected = history.existing.get(&index);
        prop_assert!(
            expected.is_some(),
            "{url} shows message {index}, which does not exist (deleted: {})",
            history.deleted.contains(&index)
        );
        prop_assert_eq!(m["body"].as_str(), expected.map(String::as_str), "{} message {}", url, index);
        indexes.push(index);
    }
    prop_assert!(indexes.len() <= size, "{url}: {} items on a page of {size}", indexes.len());
    prop_assert!(strictly_ordered(&indexes, order), "{url}: items out of order: {indexes:?}");
    let next = link(meta, "next_page_url");
    let previous = link(meta, "previous_page_url");
    // Only the end a walk is heading to can make a page short: walking forward, a page is
    // full unless it is the last; walking back, unless it is the first.
    let (onward, name) = match direction {
        Direction::Forward => (&next, "next"),
        Direction::Backward => (&previous, "previous"),
    };
    if onward.is_some() {
        prop_assert_eq!(indexes.len(), size, "{}: a page with a {} page must be full", url, name);
    }
    if indexes.len() < size {
        prop_assert!(onward.is_none(), "{url}: a short page cannot have a {name} page");
    }
    Ok(Page {
        url: url.to_owned(),
        page: meta["page"].as_u64().expect("page"),
        indexes,
        next,
        previous,
    })
}

/// Walks from `start` (already fetched) following one kind of link, applying `between[k]`
/// after the k-th fetch. Returns the pages in the order fetched, `start` first.
async fn walk(
    api: &Api,
    history: &mut History,
    start: Page,
    direction: Direction,
    size: usize,
    order: Order,
    between: &[Between],
) -> Result<Vec<Page>, TestCaseError> {
    let limit = history.existing.len() + history.deleted.len() + 3 * between.len() + 3;
    let mut pages = vec![start];
    loop {
        let current = pages.last().expect("at least the start");
        let (link, edge) = match direction {
            Direction::Forward => (current.next.clone(), current.indexes.last().copied()),
            Direction::Backward => (current.previous.clone(), current.indexes.first().copied()),
        };
        let Some(url) = link else { break };
        prop_assert!(pages.len() <= limit, "the walk does not end: {} pages so far", pages.len());
        if let Some(step) = between.get(pages.len() - 1) {
            history.apply(api, step, edge).await;
        }
        let page = fetch(api, history, &url, direction, size, order).await?;
        let expected_page = match direction {
            Direction::Forward => current.page + 1,
            Direction::Backward => current.page.saturating_sub(1),
        };
        prop_assert_eq!(page.page, expected_page, "{}", url);
        pages.push(page);
    }
    Ok(pages)
}

fn strictly_ordered(indexes: &[u64], order: Order) -> bool {
    indexes.windows(2).all(|w| match order {
        Order::Asc => w[0] < w[1],
        Order::Desc => w[0] > w[1],
    })
}

/// Runs `property` for each generated plan on one server, each case under [`CASE_TIMEOUT`].
fn check<S, F, Fut>(name: &str, strategy: S, property: F)
where
    S: Strategy<Value = Plan>,
    F: Fn(Arc<MockServer>, Api, Plan) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (server, api) = rt.block_on(start());
    let server = Arc::new(server);
    // 24 cases keep the suite fast; `PROPTEST_CASES=2000` makes a longer hunt.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let config = Config {
        cases,
        max_shrink_iters: 200,
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |plan| {
        let fut = property(server.clone(), api.clone(), plan);
        rt.block_on(async {
            tokio::time::timeout(CASE_TIMEOUT, fut)
                .await
                .unwrap_or_else(|_| Err(TestCaseError::fail(format!("case did not finish within {CASE_TIMEOUT:?}"))))
        })
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

#[test]
fn forward_walks_see_every_message_once() {
    check(
        "forward walk",
        prop_oneof![1 => plan(false), 3 => plan(true)],
        |server, api, plan| async move {
            let mut history = History::create(&server, &api, plan.history).await;
            let originals: BTreeSet<u64> = history.existing.keys().copied().collect();
            let first_url = history.list_url(plan.page_size, plan.order);
            let first = fetch(&api, &history, &first_url, Direction::Forward, plan.page_size, plan.order).await?;
            prop_assert_eq!(first.page, 0);
            prop_assert!(first.previous.is_none(), "the first page has no previous page");
            let pages = walk(
                &api,
                &mut history,
                first,
                Direction::Forward,
                plan.page_size,
                plan.order,
                &plan.between,
            )
            .await?;

            let seen: Vec<u64> = pages.iter().flat_map(|p| p.indexes.iter().copied()).collect();
            prop_assert!(strictly_ordered(&seen, plan.order), "indexes out of order or repeated: {seen:?}");
            let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
            let missed: Vec<u64> = originals
                .iter()
                .filter(|i| !history.deleted.contains(i) && !seen_set.contains(i))
                .copied()
                .collect();
            prop_assert!(missed.is_empty(), "never deleted, never seen: {missed:?}");
            let appended_seen: BTreeSet<u64> = seen_set.intersection(&history.appended).copied().collect();
            match plan.order {
                Order::Asc => {
                    // Those deleted after they were seen may be seen; the others must be.
                    let missed: Vec<u64> = history
                        .appended
                        .difference(&history.deleted)
                        .filter(|i| !appended_seen.contains(i))
                        .copied()
                        .collect();
                    prop_assert!(
                        missed.is_empty(),
                        "an ascending walk reaches everything appended meanwhile; missed {missed:?}"
                    );
                }
                Order::Desc => prop_assert!(appended_seen.is_empty(), "a descending walk never comes back to the end"),
            }
            if plan.between.is_empty() {
                let expected: Vec<u64> = match plan.order {
                    Order::Asc => originals.iter().copied().collect(),
                    Order::Desc => originals.iter().rev().copied().collect(),
                };
                prop_assert_eq!(seen, expected);
            }
            Ok(())
        },
    );
}

#[test]
fn backward_walks_mirror_forward_walks() {
    check(
        "backward walk",
        prop_oneof![1 => plan(false), 2 => plan(true)],
        |server, api, plan| async move {
            let size = plan.page_size;
            let mut history = History::create(&server, &api, plan.history).await;
            let first_url = history.list_url(size, plan.order);
            let first = fetch(&api, &history, &first_url, Direction::Forward, size, plan.order).await?;
            let forward = walk(&api, &mut history, first, Direction::Forward, size, plan.order, &[]).await?;
            let last = forward.last().expect("at least one page");
            let start_set: BTreeSet<u64> = history.existing.keys().copied().collect();
            // What lies before the last page, in walk order, when the backward walk starts.
            let before_last: BTreeSet<u64> = match (last.indexes.first(), plan.order) {
                (None, _) => BTreeSet::new(),
                (Some(&f), Order::Asc) => start_set.range(..f).copied().collect(),
                (Some(&f), Order::Desc) => start_set.range(f + 1..).copied().collect(),
            };
            if forward.len() == 1 {
                prop_assert!(last.previous.is_none(), "a single page has no previous page");
            }
            let start = Page {
                url: last.url.clone(),
                page: last.page,
                indexes: last.indexes.clone(),
                next: last.next.clone(),
                previous: last.previous.clone(),
            };
            let backward = walk(&api, &mut history, start, Direction::Backward, size, plan.order, &plan.between).await?;
            let back_pages = &backward[1..];

            // Read in walk order, the backward pages form one ordered run.
            let seen: Vec<u64> = back_pages.iter().rev().flat_map(|p| p.indexes.iter().copied()).collect();
            prop_assert!(strictly_ordered(&seen, plan.order), "indexes out of order or repeated: {seen:?}");
            let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
            let missed: Vec<u64> = before_last
                .iter()
                .filter(|i| !history.deleted.contains(i) && !seen_set.contains(i))
                .copied()
                .collect();
            prop_assert!(missed.is_empty(), "never deleted, never seen walking back: {missed:?}");
            let appended_seen: BTreeSet<u64> = seen_set.intersection(&history.appended).copied().collect();
            match plan.order {
                Order::Desc => {
                    let missed: Vec<u64> = history
                        .appended
                        .difference(&history.deleted)
                        .filter(|i| !appended_seen.contains(i))
                        .copied()
                        .collect();
                    prop_assert!(
                        missed.is_empty(),
                        "walking back in desc order reaches everything appended meanwhile; missed {missed:?}"
                    );
                }
                Order::Asc => prop_assert!(appended_seen.is_empty(), "walking back in asc order never reaches the end"),
            }
            // On a history that did not change: the same pages, reversed, with the same numbers;
            // and each page's next link leads to the page after it.
            if plan.between.is_empty() {
                let expected: Vec<(u64, &Vec<u64>)> = forward[..forward.len() - 1].iter().rev().map(|p| (p.page, &p.indexes)).collect();
                let got: Vec<(u64, &Vec<u64>)> = back_pages.iter().map(|p| (p.page, &p.indexes)).collect();
                prop_assert_eq!(got, expected);
                for (k, p) in back_pages.iter().enumerate() {
                    let after = &forward[forward.len() - 1 - k];
                    let next_url = p.next.as_deref().expect("a page found walking back has a next page");
                    let next = fetch(&api, &history, next_url, Direction::Forward, size, plan.order).await?;
                    prop_assert_eq!(&next.indexes, &after.indexes, "{}", next_url);
                    prop_assert_eq!(next.page, after.page, "{}", next_url);
                }
            }
            Ok(())
        },
    );
}
