//! Twilio's Conversations v1 REST API: form-encoded requests, snake_case JSON, Twilio's paging
//! envelope and error bodies. Every resource exists twice, under `/v1/…` (the account's default
//! service) and `/v1/Services/{ChatServiceSid}/…`.
//!
//! Boundary: handlers parse parameters, call the domain service through `Account::write`/`read`,
//! and render; they hold no state and never touch Sync or sockets.
mod conversations;
pub mod error;
pub mod form;
mod messages;
pub(crate) mod paging;
mod participant_conversations;
mod participants;
mod roles;
pub mod scope;
mod services;
mod users;
mod webhooks;

use std::collections::HashMap;

use axum::Router;
use axum::routing::MethodRouter;

use crate::server::AppState;
pub use error::ApiError;

/// Registers routes under both the default-service and the service-scoped prefix.
pub(crate) struct Routes(Router<AppState>);

impl Routes {
    fn both(self, path: &str, route: MethodRouter<AppState>) -> Routes {
        Routes(
            self.0
                .route(&format!("/v1{path}"), route.clone())
                .route(&format!("/v1/Services/{{ChatServiceSid}}{path}"), route),
        )
    }

    fn plain(self, path: &str, route: MethodRouter<AppState>) -> Routes {
        Routes(self.0.route(path, route))
    }
}

/// Marked [`Unrouted`](crate::control::near_misses::Unrouted), so the inspector lists it
/// among the near-misses.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use crate::control::near_misses::{Reason, Unrouted};
    use axum::response::IntoResponse;
    let mut res = ApiError::new(405, 20004, format!("Method {method} not allowed on {}", uri.path())).into_response();
    res.extensions_mut().insert(Unrouted(Reason::MethodNotAllowed));
    res
}

pub fn router() -> Router<AppState> {
    let r = Routes(Router::new());
    let r = conversations::routes(r);
    let r = participants::routes(r);
    let r = messages::routes(r);
    let r = users::routes(r);
    let r = roles::routes(r);
    let r = participant_conversations::routes(r);
    let r = services::routes(r);
    let r = webhooks::routes(r);
    r.0.method_not_allowed_fallback(method_not_allowed)
}

/// A path parameter axum has matched (so it is present).
fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> &'a str {
    p.get(name).map(String::as_str).unwrap_or_default()
}

/// One page of a conversation's sub-collection (`Messages`, `Participants`) in Twilio's list
/// envelope: the shared body of those list handlers.
fn conversation_page<T: crate::domain::collection::Keyed>(
    scope: &scope::Scope,
    uri: &axum::http::Uri,
    conversation: &str,
    q: &form::Params,
    segment: &str,
    pick: impl Fn(&crate::domain::conversation::ConversationEntry) -> &crate::domain::Collection<T>,
    render: impl Fn(&scope::Scope, &T) -> serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let limits = scope.account.limits().clone();
    let req = paging::PageRequest::parse(q, limits.page_size_max, limits.default_page_size)?;
    scope
        .account
        .read(|s| -> Result<serde_json::Value, crate::domain::DomainError> {
            let entry = s.service(scope.service.as_deref())?.conversation(conversation)?;
            let slice = req.select_from(pick(entry));
            let items = slice.items.iter().map(|(_, x)| render(scope, x)).collect();
            let extra = if req.order == crate::domain::Order::Desc {
                vec![("Order", "desc".to_owned())]
            } else {
                vec![]
            };
            let url = scope.url(&format!("/Conversations/{}/{segment}", entry.conversation.sid));
            Ok(paging::envelope(&segment.to_lowercase(), &url, &extra, &req, &slice, items))
        })
        .map_err(scope::on_path(uri.path()))
}
