//! Twilio's Conversations v1 REST API, end to end over a real socket.
//!
//! Each resource is exercised under both `/v1/…` (the account's default service) and
//! `/v1/Services/{ChatServiceSid}/…`; every 2xx answer is checked against Twilio's OpenAPI
//! description and every error answer against Twilio's error body by the client in
//! `support.rs`. "POST, then GET returns what was stored" is asserted for each resource.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::openapi::Spec;
use crate::support::{
    ACCOUNT_SID, API_KEY, API_SECRET, AUTH_TOKEN, Api, Auth, SERVICE_SID, add_account, assert_error_body, conversation_sid, enc, expect,
    expect_error, field_of_items, items, portless, prefixes, replace_strings, start,
};

const UNKNOWN_CH: &str = "CH00000000000000000000000000000000";
const UNKNOWN_IM: &str = "IM00000000000000000000000000000000";
const UNKNOWN_MB: &str = "MB00000000000000000000000000000000";
const UNKNOWN_US: &str = "US00000000000000000000000000000000";
const UNKNOWN_RL: &str = "RL00000000000000000000000000000000";
const UNKNOWN_IS: &str = "IS00000000000000000000000000000000";
const UNKNOWN_ME: &str = "ME00000000000000000000000000000000";

/// Twilio's generic "invalid parameter" code.
const INVALID: u64 = 20001;
const NOT_FOUND: u64 = 20404;

/// A body for a failure message, cut short.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn assert_sid(v: &Value, prefix: &str) {
    let sid = s(v);
    assert!(
        sid.len() == 34 && sid.starts_with(prefix) && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{sid:?} is not a {prefix} SID"
    );
}

async fn service_configuration(api: &Api, service: &str) -> Value {
    expect(200, api.get(&format!("/v1/Services/{service}/Configuration")).await)
}

// ---------------------------------------------------------------------------------------------
// Credentials and accounts

#[tokio::test]
async fn requests_without_valid_credentials_are_401() {
    let (server, api) = start().await;
    let other = add_account(&server, 2);
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let cases: Vec<(&str, Auth)> = vec![
        ("no credentials", Auth::None),
        ("wrong auth token", Auth::basic(ACCOUNT_SID, "wrong")),
        ("unknown account", Auth::basic("AC00000000000000000000000000000000", AUTH_TOKEN)),
        ("wrong API key secret", Auth::basic(API_KEY, "wrong")),
        ("API secret with the account SID", Auth::basic(ACCOUNT_SID, API_SECRET)),
        ("auth token with the API key", Auth::basic(API_KEY, AUTH_TOKEN)),
        ("another account's auth token", Auth::basic(ACCOUNT_SID, &other.auth_token)),
        (
            "another account's key with this account's secret",
            Auth::basic(&other.api_key, API_SECRET),
        ),
        ("empty user and password", Auth::basic("", "")),
        ("not base64", Auth::Header("Basic !!!".into())),
        ("no colon", Auth::Header(format!("Basic {}", b64(ACCOUNT_SID)))),
        ("bearer", Auth::Header("Bearer abc".into())),
    ];
    let paths = [
        "/v1/Conversations".to_owned(),
        "/v1/Conversations/general".to_owned(),
        "/v1/Conversations/general/Messages".to_owned(),
        "/v1/Users".to_owned(),
        "/v1/Roles".to_owned(),
        "/v1/ParticipantConversations?Identity=alice".to_owned(),
        "/v1/Services".to_owned(),
        format!("/v1/Services/{SERVICE_SID}"),
        format!("/v1/Services/{SERVICE_SID}/Conversations"),
        format!("/v1/Services/{SERVICE_SID}/Configuration"),
        "/v1/Configuration".to_owned(),
    ];
    for path in &paths {
        for (what, auth) in &cases {
            let r = api.with_auth(auth.clone()).send(Method::GET, path, None).await;
            assert_eq!(r.status, 401, "{what}: GET {path}: {}", r.body);
            assert_eq!(r.body["code"], 20003, "{what}: GET {path}");
            let challenge = r
                .headers
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: GET {path}: no WWW-Authenticate header"));
            assert!(challenge.starts_with("Basic "), "{what}: {challenge}");
        }
    }
    // Writes are refused before anything happens.
    let anonymous = api.with_auth(Auth::None);
    expect_error(401, 20003, anonymous.post("/v1/Conversations", &[("UniqueName", "sneaky")]).await);
    expect_error(401, 20003, anonymous.delete("/v1/Conversations/general").await);
    expect_error(401, 20003, anonymous.post("/v1/Services", &[("FriendlyName", "sneaky")]).await);
    expect_error(404, NOT_FOUND, api.get("/v1/Conversations/sneaky").await);
    expect(200, api.get("/v1/Conversations/general").await);
    let services = expect(200, api.get("/v1/Services").await);
    assert_eq!(items(&services).len(), 1);
}

#[tokio::test]
async fn api_key_credentials_work() {
    let (_server, api) = start().await;
    let key = api.with_auth(Auth::basic(API_KEY, API_SECRET));
    let list = expect(200, key.get("/v1/Conversations").await);
    assert_eq!(field_of_items(&list, "unique_name"), ["general", "history"]);
    let created = expect(201, key.post("/v1/Conversations", &[("FriendlyName", "made with a key")]).await);
    assert_eq!(created["account_sid"], ACCOUNT_SID);
    let fetched = expect(200, api.get(&format!("/v1/Conversations/{}", s(&created["sid"]))).await);
    assert_eq!(fetched, created);
    let services = expect(200, key.get("/v1/Services").await);
    assert_eq!(field_of_items(&services, "sid"), [SERVICE_SID]);
    expect(200, key.get("/v1/Configuration").await);
}

/// Conversation pages are kept rendered until the account's state changes
/// (`domain::memo`): every change shows in the very next list, and another account asking for
/// the same URL gets its own page.
#[tokio::test]
async fn a_kept_page_changes_with_the_state_and_stays_in_its_account() {
    let (server, api) = start().await;
    let other = add_account(&server, 2);
    let them = api.with_auth(Auth::basic(&other.account_sid, &other.auth_token));
    for prefix in prefixes() {
        let url = format!("{prefix}/Conversations?PageSize=50");
        let before = expect(200, api.get(&url).await);
        assert_eq!(expect(200, api.get(&url).await), before, "nothing changed");

        let created = expect(201, api.post(&format!("{prefix}/Conversations"), &[("FriendlyName", "kept")]).await);
        let sid = s(&created["sid"]).to_owned();
        let listed = expect(200, api.get(&url).await);
        assert!(
            field_of_items(&listed, "sid").contains(&sid),
            "created, then listed: {}",
            short(&listed)
        );

        expect(
            200,
            api.post(&format!("{prefix}/Conversations/{sid}"), &[("FriendlyName", "renamed")])
                .await,
        );
        let listed = expect(200, api.get(&url).await);
        let mine = items(&listed).iter().find(|c| c["sid"] == sid.as_str()).cloned();
        assert_eq!(mine.map(|c| c["friendly_name"].clone()), Some(json!("renamed")));

        let (status, _) = api.delete(&format!("{prefix}/Conversations/{sid}")).await;
        assert_eq!(status, 204);
        assert_eq!(expect(200, api.get(&url).await), before, "deleted: the page is as it was");

        let theirs = expect(200, them.get(&url.replace(SERVICE_SID, &other.service_sid)).await);
        assert!(items(&theirs).is_empty(), "another account's page: {}", short(&theirs));
    }
}

#[tokio::test]
async fn accounts_never_see_each_other() {
    let (server, api) = start().await;
    let other = add_account(&server, 2);
    let general = conversation_sid(&api, "general").await;
    let by_token = api.with_auth(Auth::basic(&other.account_sid, &other.auth_token));
    let by_key = api.with_auth(Auth::basic(&other.api_key, &other.api_secret));

    for (what, them) in [("auth token", &by_token), ("API key", &by_key)] {
        let list = expect(200, them.get("/v1/Conversations").await);
        assert!(items(&list).is_empty(), "{what}: {list}");
        let users = expect(200, them.get("/v1/Users").await);
        assert!(items(&users).is_empty(), "{what}: {users}");
        let services = expect(200, them.get("/v1/Services").await);
        assert_eq!(field_of_items(&services, "sid"), [other.service_sid.as_str()], "{what}");
        let config = expect(200, them.get("/v1/Configuration").await);
        assert_eq!(config["account_sid"], other.account_sid.as_str());
        assert_eq!(config["default_chat_service_sid"], other.service_sid.as_str());
        let theirs = expect(200, them.get("/v1/ParticipantConversations?Identity=alice").await);
        assert!(items(&theirs).is_empty(), "{what}: {theirs}");

        for path in [
            "/v1/Conversations/general".to_owned(),
            format!("/v1/Conversations/{general}"),
            format!("/v1/Conversations/{general}/Messages"),
            format!("/v1/Conversations/{general}/Messages/0"),
            format!("/v1/Conversations/{general}/Participants"),
            "/v1/Users/alice".to_owned(),
            "/v1/Users/alice/Conversations".to_owned(),
            format!("/v1/Services/{SERVICE_SID}"),
            format!("/v1/Services/{SERVICE_SID}/Conversations"),
            format!("/v1/Services/{SERVICE_SID}/Configuration"),
            format!("/v1/Services/{SERVICE_SID}/Roles"),
        ] {
            expect_error(404, NOT_FOUND, them.get(&path).await);
        }
        expect_error(
            404,
            NOT_FOUND,
            them.post(&format!("/v1/Conversations/{general}/Messages"), &[("Body", "intrusion")])
                .await,
        );
        expect_error(
            404,
            NOT_FOUND,
            them.post(&format!("/v1/Conversations/{general}"), &[("FriendlyName", "mine now")])
                .await,
        );
        expect_error(404, NOT_FOUND, them.delete(&format!("/v1/Conversations/{general}")).await);
        expect_error(404, NOT_FOUND, them.delete("/v1/Users/alice").await);
        expect_error(404, NOT_FOUND, them.delete(&format!("/v1/Services/{SERVICE_SID}")).await);
    }

    // Unique names are per account.
    let theirs = expect(201, by_token.post("/v1/Conversations", &[("UniqueName", "general")]).await);
    assert_eq!(theirs["account_sid"], other.account_sid.as_str());
    assert_eq!(theirs["chat_service_sid"], other.service_sid.as_str());
    assert_ne!(theirs["sid"], general.as_str());
    expect_error(404, NOT_FOUND, api.get(&format!("/v1/Conversations/{}", s(&theirs["sid"]))).await);
    assert_eq!(conversation_sid(&api, "general").await, general);
    assert_eq!(conversation_sid(&by_key, "general").await, s(&theirs["sid"]));

    // One account's secret never opens the other.
    for auth in [
        Auth::basic(&other.account_sid, AUTH_TOKEN),
        Auth::basic(ACCOUNT_SID, &other.auth_token),
        Auth::basic(&other.api_key, API_SECRET),
        Auth::basic(API_KEY, &other.api_secret),
    ] {
        expect_error(401, 20003, api.with_auth(auth).get("/v1/Conversations").await);
    }

    // The first account is intact.
    let messages = expect(200, api.get(&format!("/v1/Conversations/{general}/Messages")).await);
    assert_eq!(items(&messages).len(), 4);
    let users = expect(200, api.get("/v1/Users").await);
    assert_eq!(field_of_items(&users, "identity"), ["alice", "bob", "carol"]);
}

// ---------------------------------------------------------------------------------------------
// Conversations

#[tokio::test]
async fn conversations_create_fetch_update_delete() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let base = format!("{prefix}/Conversations");
        let created = expect(
            201,
            api.post(
                &base,
                &[("FriendlyName", "Team"), ("UniqueName", "team"), ("Attributes", r#"{"a":1}"#)],
            )
            .await,
        );
        assert_sid(&created["sid"], "CH");
        let sid = s(&created["sid"]).to_owned();
        let url = format!("{}{base}/{sid}", api.base());
        assert_eq!(created["account_sid"], ACCOUNT_SID);
        assert_eq!(created["chat_service_sid"], SERVICE_SID);
        assert_eq!(created["friendly_name"], "Team");
        assert_eq!(created["unique_name"], "team");
        assert_eq!(created["attributes"], r#"{"a":1}"#);
        assert_eq!(created["state"], "active");
        assert_eq!(created["url"], url.as_str());
        assert_eq!(created["links"]["participants"], format!("{url}/Participants"));
        assert_eq!(created["links"]["messages"], format!("{url}/Messages"));

        // POST, then GET by SID or by unique name, returns what was stored.
        assert_eq!(expect(200, api.get(&format!("{base}/{sid}")).await), created, "{prefix}");
        assert_eq!(expect(200, api.get(&format!("{base}/team")).await), created, "{prefix}");
        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "unique_name"), ["general", "history", "team"]);
        assert_eq!(items(&list)[2], created);

        let updated = expect(
            200,
            api.post(
                &format!("{base}/{sid}"),
                &[
                    ("FriendlyName", "Team 2"),
                    ("UniqueName", "team2"),
                    ("Attributes", r#"{"a":2}"#),
                    ("State", "inactive"),
                ],
            )
            .await,
        );
        assert_eq!(updated["sid"], sid.as_str());
        assert_eq!(updated["friendly_name"], "Team 2");
        assert_eq!(updated["unique_name"], "team2");
        assert_eq!(updated["attributes"], r#"{"a":2}"#);
        assert_eq!(updated["state"], "inactive");
        assert_eq!(updated["date_created"], created["date_created"]);
        assert_eq!(expect(200, api.get(&format!("{base}/team2")).await), updated);
        assert_eq!(expect(200, api.get(&format!("{base}/{sid}")).await), updated);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/team")).await);

        // The State filter.
        for (state, expected) in [
            ("inactive", vec!["team2"]),
            ("active", vec!["general", "history"]),
            ("closed", vec![]),
        ] {
            let list = expect(200, api.get(&format!("{base}?State={state}")).await);
            assert_eq!(field_of_items(&list, "unique_name"), expected, "State={state}");
            assert!(s(&list["meta"]["url"]).contains(&format!("State={state}")), "{list}");
        }
        // Filters survive paging.
        let page = expect(200, api.get(&format!("{base}?State=active&PageSize=1")).await);
        assert_eq!(field_of_items(&page, "unique_name"), ["general"]);
        let next = s(&page["meta"]["next_page_url"]).to_owned();
        assert!(next.contains("State=active"), "{next}");
        let page = expect(200, api.get(&next).await);
        assert_eq!(field_of_items(&page, "unique_name"), ["history"]);
        assert_eq!(page["meta"]["next_page_url"], Value::Null);
        expect_error(400, INVALID, api.get(&format!("{base}?State=sleeping")).await);
        expect_error(400, INVALID, api.post(&base, &[("State", "sleeping")]).await);

        // Unique names are unique.
        expect_error(409, 50353, api.post(&base, &[("UniqueName", "general")]).await);
        expect_error(409, 50353, api.post(&format!("{base}/{sid}"), &[("UniqueName", "history")]).await);

        expect(204, api.delete(&format!("{base}/{sid}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/{sid}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/team2")).await);
        expect_error(404, NOT_FOUND, api.delete(&format!("{base}/{sid}")).await);
        expect_error(404, NOT_FOUND, api.post(&format!("{base}/{sid}"), &[("FriendlyName", "x")]).await);
        // Dates can be given (imports of existing history).
        let dated = expect(
            201,
            api.post(
                &base,
                &[("DateCreated", "2020-01-02T03:04:05Z"), ("DateUpdated", "2020-01-03T00:00:00Z")],
            )
            .await,
        );
        assert_eq!(dated["date_created"], "2020-01-02T03:04:05Z");
        assert_eq!(dated["date_updated"], "2020-01-03T00:00:00Z");
        assert_eq!(expect(200, api.get(&format!("{base}/{}", s(&dated["sid"]))).await), dated);
        expect_error(400, INVALID, api.post(&base, &[("DateCreated", "yesterday")]).await);
        expect(204, api.delete(&format!("{base}/{}", s(&dated["sid"]))).await);
        // Deleting by unique name works too.
        expect(204, api.delete(&format!("{base}/history")).await);
        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "unique_name"), ["general"]);
    }
}

#[tokio::test]
async fn both_prefixes_address_the_default_service() {
    let (_server, api) = start().await;
    let [plain, scoped] = prefixes();
    let created = expect(201, api.post(&format!("{plain}/Conversations"), &[("UniqueName", "shared")]).await);
    let sid = s(&created["sid"]);
    let via_service = expect(200, api.get(&format!("{scoped}/Conversations/{sid}")).await);
    assert_eq!(via_service["sid"], sid);
    assert_eq!(via_service["chat_service_sid"], SERVICE_SID);
    // Resource URLs follow the path they were addressed by.
    assert_eq!(via_service["url"], format!("{}{scoped}/Conversations/{sid}", api.base()));
    assert_eq!(created["url"], format!("{}{plain}/Conversations/{sid}", api.base()));
    let msg = expect(
        201,
        api.post(&format!("{scoped}/Conversations/shared/Messages"), &[("Body", "hi")])
            .await,
    );
    assert_eq!(msg["chat_service_sid"], SERVICE_SID);
    let plain_msg = expect(200, api.get(&format!("{plain}/Conversations/{sid}/Messages/0")).await);
    assert_eq!(plain_msg["sid"], msg["sid"]);
}

// ---------------------------------------------------------------------------------------------
// Participants

#[tokio::test]
async fn participants_chat_and_sms() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let defaults = service_configuration(&api, SERVICE_SID).await;
        let conv = expect(201, api.post(&format!("{prefix}/Conversations"), &[("FriendlyName", "p")]).await);
        let conv_sid = s(&conv["sid"]).to_owned();
        let base = format!("{prefix}/Conversations/{conv_sid}/Participants");

        let alice = expect(
            201,
            api.post(&base, &[("Identity", "alice"), ("Attributes", r#"{"host":true}"#)]).await,
        );
        assert_sid(&alice["sid"], "MB");
        let alice_sid = s(&alice["sid"]).to_owned();
        assert_eq!(alice["account_sid"], ACCOUNT_SID);
        assert_eq!(alice["conversation_sid"], conv_sid.as_str());
        assert_eq!(alice["identity"], "alice");
        assert_eq!(alice["attributes"], r#"{"host":true}"#);
        assert_eq!(alice["messaging_binding"], Value::Null);
        assert_eq!(alice["role_sid"], defaults["default_conversation_role_sid"]);
        assert_eq!(alice["last_read_message_index"], Value::Null);
        assert_eq!(alice["url"], format!("{}{base}/{alice_sid}", api.base()));

        // POST, then GET by SID or by identity, returns what was stored.
        assert_eq!(expect(200, api.get(&format!("{base}/{alice_sid}")).await), alice);
        assert_eq!(expect(200, api.get(&format!("{base}/alice")).await), alice);
        expect_error(409, 50433, api.post(&base, &[("Identity", "alice")]).await);

        let sms = expect(
            201,
            api.post(
                &base,
                &[
                    ("MessagingBinding.Address", "+15558675310"),
                    ("MessagingBinding.ProxyAddress", "+15017122661"),
                ],
            )
            .await,
        );
        let sms_sid = s(&sms["sid"]).to_owned();
        assert_eq!(sms["identity"], Value::Null);
        assert_eq!(
            sms["messaging_binding"],
            json!({"type": "sms", "address": "+15558675310", "proxy_address": "+15017122661"})
        );
        assert_eq!(sms["attributes"], "{}");
        assert_eq!(expect(200, api.get(&format!("{base}/{sms_sid}")).await), sms);
        expect_error(
            409,
            50416,
            api.post(
                &base,
                &[
                    ("MessagingBinding.Address", "+15558675310"),
                    ("MessagingBinding.ProxyAddress", "+15017122661"),
                ],
            )
            .await,
        );
        expect_error(
            400,
            INVALID,
            api.post(
                &base,
                &[
                    ("Identity", "bob"),
                    ("MessagingBinding.Address", "+15550001111"),
                    ("MessagingBinding.ProxyAddress", "+15017122661"),
                ],
            )
            .await,
        );
        expect_error(400, INVALID, api.post(&base, &[("Attributes", "{}")]).await);
        expect_error(
            400,
            INVALID,
            api.post(&base, &[("MessagingBinding.ProxyAddress", "+15017122661")]).await,
        );

        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "sid"), [alice_sid.as_str(), sms_sid.as_str()]);
        assert_eq!(items(&list)[0], alice);

        let updated = expect(
            200,
            api.post(&format!("{base}/{alice_sid}"), &[("Attributes", r#"{"host":false}"#)])
                .await,
        );
        assert_eq!(updated["attributes"], r#"{"host":false}"#);
        assert_eq!(updated["identity"], "alice");
        assert_eq!(expect(200, api.get(&format!("{base}/alice")).await), updated);

        expect(204, api.delete(&format!("{base}/alice")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/{alice_sid}")).await);
        expect_error(404, NOT_FOUND, api.delete(&format!("{base}/{alice_sid}")).await);
        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "sid"), [sms_sid.as_str()]);
        expect(204, api.delete(&format!("{base}/{sms_sid}")).await);

        expect_error(
            404,
            NOT_FOUND,
            api.get(&format!("{prefix}/Conversations/{UNKNOWN_CH}/Participants")).await,
        );
        expect_error(
            404,
            NOT_FOUND,
            api.post(
                &format!("{prefix}/Conversations/{UNKNOWN_CH}/Participants"),
                &[("Identity", "alice")],
            )
            .await,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

#[tokio::test]
async fn messages_create_fetch_update_delete() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let conv = expect(201, api.post(&format!("{prefix}/Conversations"), &[("FriendlyName", "m")]).await);
        let conv_sid = s(&conv["sid"]).to_owned();
        let bob = expect(
            201,
            api.post(&format!("{prefix}/Conversations/{conv_sid}/Participants"), &[("Identity", "bob")])
                .await,
        );
        let base = format!("{prefix}/Conversations/{conv_sid}/Messages");

        let m = expect(
            201,
            api.post(&base, &[("Body", "hello"), ("Author", "bob"), ("Attributes", r#"{"k":"v"}"#)])
                .await,
        );
        assert_sid(&m["sid"], "IM");
        let m_sid = s(&m["sid"]).to_owned();
        let url = format!("{}{base}/{m_sid}", api.base());
        assert_eq!(m["account_sid"], ACCOUNT_SID);
        assert_eq!(m["conversation_sid"], conv_sid.as_str());
        assert_eq!(m["index"], 0);
        assert_eq!(m["author"], "bob");
        assert_eq!(m["body"], "hello");
        assert_eq!(m["attributes"], r#"{"k":"v"}"#);
        assert_eq!(m["participant_sid"], bob["sid"]);
        assert_eq!(m["media"], Value::Null);
        assert_eq!(m["url"], url.as_str());
        assert_eq!(m["links"]["delivery_receipts"], format!("{url}/Receipts"));
        assert_eq!(m["links"]["channel_metadata"], format!("{url}/ChannelMetadata"));

        // POST, then GET by SID or by index, returns what was stored.
        assert_eq!(expect(200, api.get(&format!("{base}/{m_sid}")).await), m);
        assert_eq!(expect(200, api.get(&format!("{base}/0")).await), m);

        let system = expect(201, api.post(&base, &[("Body", "from nobody")]).await);
        assert_eq!(system["index"], 1);
        assert_eq!(system["author"], "system");
        assert_eq!(system["participant_sid"], Value::Null);
        assert_eq!(system["attributes"], "{}");

        let updated = expect(
            200,
            api.post(&format!("{base}/{m_sid}"), &[("Body", "edited"), ("Attributes", r#"{"k":"w"}"#)])
                .await,
        );
        assert_eq!(updated["sid"], m_sid.as_str());
        assert_eq!(updated["index"], 0);
        assert_eq!(updated["body"], "edited");
        assert_eq!(updated["attributes"], r#"{"k":"w"}"#);
        assert_eq!(updated["author"], "bob");
        assert_eq!(updated["date_created"], m["date_created"]);
        assert_eq!(expect(200, api.get(&format!("{base}/{m_sid}")).await), updated);
        let by_index = expect(200, api.post(&format!("{base}/1"), &[("Author", "carol")]).await);
        assert_eq!(by_index["sid"], system["sid"]);
        assert_eq!(by_index["author"], "carol");
        assert_eq!(expect(200, api.get(&format!("{base}/1")).await), by_index);

        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "body"), ["edited", "from nobody"]);
        assert_eq!(items(&list)[0], updated);

        expect(204, api.delete(&format!("{base}/{m_sid}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/{m_sid}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/0")).await);
        expect_error(404, NOT_FOUND, api.delete(&format!("{base}/{m_sid}")).await);
        expect(204, api.delete(&format!("{base}/1")).await);
        let list = expect(200, api.get(&base).await);
        assert!(items(&list).is_empty(), "{list}");

        let dated = expect(
            201,
            api.post(&base, &[("Body", "old"), ("DateCreated", "2020-01-02T03:04:05Z")]).await,
        );
        assert_eq!(dated["date_created"], "2020-01-02T03:04:05Z");
        assert_eq!(expect(200, api.get(&format!("{base}/{}", s(&dated["sid"]))).await), dated);
        expect(204, api.delete(&format!("{base}/{}", s(&dated["sid"]))).await);

        // Indexes are never reused.
        let next = expect(201, api.post(&base, &[("Body", "again")]).await);
        assert_eq!(next["index"], 3);
    }
}

#[tokio::test]
async fn message_creation_is_validated() {
    let (_server, api) = start().await;
    let base = "/v1/Conversations/general/Messages";
    expect_error(400, INVALID, api.post(base, &[]).await);
    expect_error(400, INVALID, api.post(base, &[("Author", "alice"), ("Body", "")]).await);
    // A media SID nobody uploaded.
    let (status, body) = api.post(base, &[("MediaSid", UNKNOWN_ME)]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.post(base, &[("Body", "with media"), ("MediaSid", UNKNOWN_ME)]).await;
    assert_eq!(status, 400, "{body}");
    // The seeded PNG is attached to message 2 already: it cannot be attached again.
    let seeded = expect(200, api.get(&format!("{base}/2")).await);
    let media_sid = s(&seeded["media"][0]["sid"]).to_owned();
    assert_sid(&seeded["media"][0]["sid"], "ME");
    let (status, body) = api.post(base, &[("MediaSid", &media_sid)]).await;
    assert_eq!(status, 400, "{body}");
    expect_error(
        404,
        NOT_FOUND,
        api.post(&format!("/v1/Conversations/{UNKNOWN_CH}/Messages"), &[("Body", "x")])
            .await,
    );
    let list = expect(200, api.get(base).await);
    assert_eq!(items(&list).len(), 4, "nothing was added");
}

#[tokio::test]
async fn seeded_history_lists_in_both_orders_and_pages() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let base = format!("{prefix}/Conversations/general/Messages");
        let general = conversation_sid(&api, "general").await;
        let canonical = format!("{}{prefix}/Conversations/{general}/Messages", api.base());

        let asc = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&asc, "index"), ["0", "1", "2", "3"]);
        assert_eq!(field_of_items(&asc, "author"), ["alice", "bob", "carol", "alice"]);
        assert_eq!(field_of_items(&asc, "body")[1], "Hi Alice 👋");
        let desc = expect(200, api.get(&format!("{base}?Order=desc")).await);
        assert_eq!(field_of_items(&desc, "index"), ["3", "2", "1", "0"]);
        assert_eq!(items(&desc)[3], items(&asc)[0]);

        let page0 = expect(200, api.get(&format!("{base}?PageSize=3")).await);
        assert_eq!(field_of_items(&page0, "index"), ["0", "1", "2"]);
        let meta = &page0["meta"];
        assert_eq!(meta["page"], 0);
        assert_eq!(meta["page_size"], 3);
        assert_eq!(meta["key"], "messages");
        assert_eq!(meta["previous_page_url"], Value::Null);
        assert_eq!(meta["first_page_url"], format!("{canonical}?PageSize=3&Page=0"));
        let next = s(&meta["next_page_url"]).to_owned();
        assert!(next.starts_with(&format!("{canonical}?")), "{next}");
        let page1 = expect(200, api.get(&next).await);
        assert_eq!(field_of_items(&page1, "index"), ["3"]);
        assert_eq!(page1["meta"]["page"], 1);
        assert_eq!(page1["meta"]["next_page_url"], Value::Null);
        assert_eq!(page1["meta"]["url"], next.as_str());
        let back = expect(200, api.get(s(&page1["meta"]["previous_page_url"])).await);
        assert_eq!(field_of_items(&back, "index"), ["0", "1", "2"]);
        assert_eq!(back["meta"]["page"], 0);

        let d0 = expect(200, api.get(&format!("{base}?Order=desc&PageSize=3")).await);
        assert_eq!(field_of_items(&d0, "index"), ["3", "2", "1"]);
        let d_next = s(&d0["meta"]["next_page_url"]).to_owned();
        assert!(d_next.contains("Order=desc"), "{d_next}");
        let d1 = expect(200, api.get(&d_next).await);
        assert_eq!(field_of_items(&d1, "index"), ["0"]);
        assert_eq!(d1["meta"]["next_page_url"], Value::Null);

        expect_error(400, INVALID, api.get(&format!("{base}?Order=sideways")).await);

        // The generated history: 120 messages, authors taking turns.
        let last = expect(200, api.get(&format!("{prefix}/Conversations/history/Messages/119")).await);
        assert_eq!(last["body"], "message 120");
        assert_eq!(last["author"], "bob");
        let first_page = expect(200, api.get(&format!("{prefix}/Conversations/history/Messages")).await);
        assert_eq!(items(&first_page).len(), 50, "the default page size");
        assert!(first_page["meta"]["next_page_url"].is_string());
        expect_error(
            404,
            NOT_FOUND,
            api.get(&format!("{prefix}/Conversations/history/Messages/120")).await,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Users and their conversations

#[tokio::test]
async fn users_create_fetch_update_delete() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let defaults = service_configuration(&api, SERVICE_SID).await;
        let base = format!("{prefix}/Users");
        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "identity"), ["alice", "bob", "carol"]);
        assert_eq!(field_of_items(&list, "friendly_name"), ["Alice", "Bob", "Carol"]);

        let dave = expect(
            201,
            api.post(
                &base,
                &[("Identity", "dave"), ("FriendlyName", "Dave"), ("Attributes", r#"{"x":1}"#)],
            )
            .await,
        );
        assert_sid(&dave["sid"], "US");
        let sid = s(&dave["sid"]).to_owned();
        let url = format!("{}{base}/{sid}", api.base());
        assert_eq!(dave["identity"], "dave");
        assert_eq!(dave["friendly_name"], "Dave");
        assert_eq!(dave["attributes"], r#"{"x":1}"#);
        assert_eq!(dave["account_sid"], ACCOUNT_SID);
        assert_eq!(dave["chat_service_sid"], SERVICE_SID);
        assert_eq!(dave["role_sid"], defaults["default_chat_service_role_sid"]);
        assert_eq!(dave["url"], url.as_str());
        assert_eq!(dave["links"]["user_conversations"], format!("{url}/Conversations"));

        assert_eq!(expect(200, api.get(&format!("{base}/{sid}")).await), dave);
        assert_eq!(expect(200, api.get(&format!("{base}/dave")).await), dave);
        expect_error(409, 50201, api.post(&base, &[("Identity", "dave")]).await);
        expect_error(409, 50201, api.post(&base, &[("Identity", "alice")]).await);
        expect_error(400, INVALID, api.post(&base, &[("FriendlyName", "nobody")]).await);

        let updated = expect(
            200,
            api.post(&format!("{base}/dave"), &[("FriendlyName", "David"), ("Attributes", r#"{"x":2}"#)])
                .await,
        );
        assert_eq!(updated["sid"], sid.as_str());
        assert_eq!(updated["friendly_name"], "David");
        assert_eq!(updated["attributes"], r#"{"x":2}"#);
        assert_eq!(updated["identity"], "dave");
        assert_eq!(expect(200, api.get(&format!("{base}/{sid}")).await), updated);

        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "identity"), ["alice", "bob", "carol", "dave"]);

        expect(204, api.delete(&format!("{base}/{sid}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/{sid}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/dave")).await);
        expect_error(404, NOT_FOUND, api.delete(&format!("{base}/dave")).await);
        expect_error(
            404,
            NOT_FOUND,
            api.post(&format!("{base}/dave"), &[("FriendlyName", "ghost")]).await,
        );
        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "identity"), ["alice", "bob", "carol"]);
    }
}

#[tokio::test]
async fn user_conversations_list_fetch_update_leave() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let general = conversation_sid(&api, "general").await;
        let history = conversation_sid(&api, "history").await;
        let alice = expect(200, api.get(&format!("{prefix}/Users/alice")).await);
        let alice_sid = s(&alice["sid"]).to_owned();
        let alice_in_general = expect(200, api.get(&format!("{prefix}/Conversations/{general}/Participants/alice")).await);
        let base = format!("{prefix}/Users/{alice_sid}/Conversations");

        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "conversation_sid"), [general.as_str(), history.as_str()]);
        assert_eq!(list["meta"]["key"], "conversations");
        let by_identity = expect(200, api.get(&format!("{prefix}/Users/alice/Conversations")).await);
        assert_eq!(items(&by_identity), items(&list));
        let uc = &items(&list)[0];
        assert_eq!(uc["account_sid"], ACCOUNT_SID);
        assert_eq!(uc["chat_service_sid"], SERVICE_SID);
        assert_eq!(uc["user_sid"], alice_sid.as_str());
        assert_eq!(uc["participant_sid"], alice_in_general["sid"]);
        assert_eq!(uc["unique_name"], "general");
        assert_eq!(uc["friendly_name"], "General");
        assert_eq!(uc["attributes"], r#"{"topic":"everything"}"#);
        assert_eq!(uc["conversation_state"], "active");
        assert_eq!(uc["notification_level"], "default");
        assert_eq!(uc["last_read_message_index"], Value::Null);
        assert_eq!(uc["url"], format!("{}{base}/{general}", api.base()));

        let fetched = expect(200, api.get(&format!("{base}/{general}")).await);
        assert_eq!(&fetched, uc);

        let updated = expect(
            200,
            api.post(
                &format!("{base}/{general}"),
                &[("NotificationLevel", "muted"), ("LastReadMessageIndex", "2")],
            )
            .await,
        );
        assert_eq!(updated["notification_level"], "muted");
        assert_eq!(updated["last_read_message_index"], 2);
        assert_eq!(updated["unread_messages_count"], 1, "message 3 is unread");
        assert_eq!(expect(200, api.get(&format!("{base}/{general}")).await), updated);
        let participant = expect(200, api.get(&format!("{prefix}/Conversations/{general}/Participants/alice")).await);
        assert_eq!(participant["last_read_message_index"], 2);
        assert!(participant["last_read_timestamp"].is_string(), "{participant}");
        let read_all = expect(200, api.post(&format!("{base}/{general}"), &[("LastReadMessageIndex", "3")]).await);
        assert_eq!(read_all["unread_messages_count"], 0);
        assert_eq!(read_all["notification_level"], "muted", "unchanged");
        expect_error(
            400,
            INVALID,
            api.post(&format!("{base}/{general}"), &[("NotificationLevel", "loud")]).await,
        );

        // Carol is not in `history`; nobody is in an unknown conversation.
        expect_error(
            404,
            NOT_FOUND,
            api.get(&format!("{prefix}/Users/carol/Conversations/{history}")).await,
        );
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/{UNKNOWN_CH}")).await);
        expect_error(404, NOT_FOUND, api.get(&format!("{prefix}/Users/{UNKNOWN_US}/Conversations")).await);

        // Deleting a user conversation leaves it.
        expect(204, api.delete(&format!("{base}/{general}")).await);
        let list = expect(200, api.get(&base).await);
        assert_eq!(field_of_items(&list, "conversation_sid"), [history.as_str()]);
        expect_error(404, NOT_FOUND, api.get(&format!("{base}/{general}")).await);
        expect_error(404, NOT_FOUND, api.delete(&format!("{base}/{general}")).await);
        let participants = expect(200, api.get(&format!("{prefix}/Conversations/{general}/Participants")).await);
        assert_eq!(field_of_items(&participants, "identity"), ["bob", "carol"]);
        expect(200, api.get(&format!("{prefix}/Users/alice")).await);
    }
}

#[tokio::test]
async fn participant_conversations_by_identity_and_address() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let general = conversation_sid(&api, "general").await;
        let history = conversation_sid(&api, "history").await;
        let base = format!("{prefix}/ParticipantConversations");

        let alice = expect(200, api.get(&format!("{base}?Identity=alice")).await);
        assert_eq!(field_of_items(&alice, "conversation_sid"), [general.as_str(), history.as_str()]);
        assert!(s(&alice["meta"]["url"]).contains("Identity=alice"), "{alice}");
        let first = &items(&alice)[0];
        let alice_user = expect(200, api.get(&format!("{prefix}/Users/alice")).await);
        let alice_part = expect(200, api.get(&format!("{prefix}/Conversations/{general}/Participants/alice")).await);
        assert_eq!(first["participant_identity"], "alice");
        assert_eq!(first["participant_user_sid"], alice_user["sid"]);
        assert_eq!(first["participant_sid"], alice_part["sid"]);
        assert_eq!(first["participant_messaging_binding"], Value::Null);
        assert_eq!(first["conversation_unique_name"], "general");
        assert_eq!(first["conversation_friendly_name"], "General");
        assert_eq!(first["conversation_state"], "active");
        assert_eq!(first["chat_service_sid"], SERVICE_SID);

        let carol = expect(200, api.get(&format!("{base}?Identity=carol")).await);
        assert_eq!(field_of_items(&carol, "conversation_sid"), [general.as_str()]);
        let nobody = expect(200, api.get(&format!("{base}?Identity=nobody")).await);
        assert!(items(&nobody).is_empty());

        let sms = expect(
            201,
            api.post(
                &format!("{prefix}/Conversations/{history}/Participants"),
                &[
                    ("MessagingBinding.Address", "+15558675310"),
                    ("MessagingBinding.ProxyAddress", "+15017122661"),
                ],
            )
            .await,
        );
        let by_address = expect(200, api.get(&format!("{base}?Address={}", enc("+15558675310"))).await);
        assert_eq!(field_of_items(&by_address, "conversation_sid"), [history.as_str()]);
        let found = &items(&by_address)[0];
        assert_eq!(found["participant_sid"], sms["sid"]);
        assert_eq!(found["participant_identity"], Value::Null);
        assert_eq!(found["participant_user_sid"], Value::Null);
        assert_eq!(found["participant_messaging_binding"], sms["messaging_binding"]);
        let elsewhere = expect(200, api.get(&format!("{base}?Address={}", enc("+15550000000"))).await);
        assert!(items(&elsewhere).is_empty());

        expect_error(400, INVALID, api.get(&base).await);
    }
}

// ---------------------------------------------------------------------------------------------
// Roles, configuration, services

#[tokio::test]
async fn the_four_default_roles() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let list = expect(200, api.get(&format!("{prefix}/Roles")).await);
        let roles = items(&list);
        assert_eq!(roles.len(), 4, "{list}");
        let kinds: BTreeSet<(String, String)> = roles
            .iter()
            .map(|r| (s(&r["friendly_name"]).to_owned(), s(&r["type"]).to_owned()))
            .collect();
        let expected: BTreeSet<(String, String)> = [
            ("channel admin", "conversation"),
            ("channel user", "conversation"),
            ("service admin", "service"),
            ("service user", "service"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert_eq!(kinds, expected);
        for role in roles {
            assert_sid(&role["sid"], "RL");
            assert_eq!(role["account_sid"], ACCOUNT_SID);
            assert_eq!(role["chat_service_sid"], SERVICE_SID);
            assert!(!role["permissions"].as_array().expect("permissions").is_empty(), "{role}");
            let path = format!("{prefix}/Roles/{}", s(&role["sid"]));
            assert_eq!(role["url"], format!("{}{path}", api.base()));
            assert_eq!(&expect(200, api.get(&path).await), role);
        }
        let named = |name: &str| {
            roles
                .iter()
                .find(|r| r["friendly_name"] == name)
                .map(|r| r["sid"].clone())
                .unwrap_or_default()
        };
        let config = service_configuration(&api, SERVICE_SID).await;
        assert_eq!(config["default_chat_service_role_sid"], named("service user"));
        assert_eq!(config["default_conversation_role_sid"], named("channel user"));
        assert_eq!(config["default_conversation_creator_role_sid"], named("channel admin"));
        expect_error(404, NOT_FOUND, api.get(&format!("{prefix}/Roles/{UNKNOWN_RL}")).await);
    }
}

#[tokio::test]
async fn account_configuration_post_then_get() {
    let (_server, api) = start().await;
    let config = expect(200, api.get("/v1/Configuration").await);
    assert_eq!(config["account_sid"], ACCOUNT_SID);
    assert_eq!(config["default_chat_service_sid"], SERVICE_SID);
    assert_eq!(config["default_inactive_timer"], Value::Null);
    assert_eq!(config["default_closed_timer"], Value::Null);
    assert_eq!(config["url"], format!("{}/v1/Configuration", api.base()));
    assert_eq!(config["links"]["service"], format!("{}/v1/Services/{SERVICE_SID}", api.base()));

    let posted = expect(
        200,
        api.post(
            "/v1/Configuration",
            &[
                ("DefaultInactiveTimer", "PT1H"),
                ("DefaultClosedTimer", "P1D"),
                ("DefaultMessagingServiceSid", "MG00000000000000000000000000000001"),
            ],
        )
        .await,
    );
    assert_eq!(posted["default_inactive_timer"], "PT1H");
    assert_eq!(posted["default_closed_timer"], "P1D");
    assert_eq!(posted["default_messaging_service_sid"], "MG00000000000000000000000000000001");
    assert_eq!(posted["default_chat_service_sid"], SERVICE_SID);
    assert_eq!(expect(200, api.get("/v1/Configuration").await), posted);

    let (status, body) = api.post("/v1/Configuration", &[("DefaultChatServiceSid", UNKNOWN_IS)]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(expect(200, api.get("/v1/Configuration").await), posted);

    // Another default service changes what `/v1/…` addresses.
    let second = expect(201, api.post("/v1/Services", &[("FriendlyName", "Second")]).await);
    let second_sid = s(&second["sid"]).to_owned();
    let switched = expect(200, api.post("/v1/Configuration", &[("DefaultChatServiceSid", &second_sid)]).await);
    assert_eq!(switched["default_chat_service_sid"], second_sid.as_str());
    assert_eq!(switched["links"]["service"], format!("{}/v1/Services/{second_sid}", api.base()));
    assert_eq!(expect(200, api.get("/v1/Configuration").await), switched);
    let list = expect(200, api.get("/v1/Conversations").await);
    assert!(items(&list).is_empty(), "{list}");
    let created = expect(201, api.post("/v1/Conversations", &[("UniqueName", "fresh")]).await);
    assert_eq!(created["chat_service_sid"], second_sid.as_str());
    let old = expect(200, api.get(&format!("/v1/Services/{SERVICE_SID}/Conversations")).await);
    assert_eq!(field_of_items(&old, "unique_name"), ["general", "history"]);
}

#[tokio::test]
async fn service_configuration_post_then_get() {
    let (_server, api) = start().await;
    let second = expect(201, api.post("/v1/Services", &[("FriendlyName", "Second")]).await);
    for service in [SERVICE_SID.to_owned(), s(&second["sid"]).to_owned()] {
        let path = format!("/v1/Services/{service}/Configuration");
        let config = expect(200, api.get(&path).await);
        let url = format!("{}{path}", api.base());
        assert_eq!(config["chat_service_sid"], service.as_str());
        assert_eq!(config["url"], url.as_str());
        assert_eq!(config["links"]["notifications"], format!("{url}/Notifications"));
        assert_eq!(config["links"]["webhooks"], format!("{url}/Webhooks"));

        let roles = expect(200, api.get(&format!("/v1/Services/{service}/Roles")).await);
        let admin = items(&roles)
            .iter()
            .find(|r| r["friendly_name"] == "channel admin")
            .map(|r| s(&r["sid"]).to_owned())
            .expect("a channel admin role");
        let posted = expect(
            200,
            api.post(&path, &[("DefaultConversationRoleSid", &admin), ("ReachabilityEnabled", "false")])
                .await,
        );
        assert_eq!(posted["default_conversation_role_sid"], admin.as_str());
        assert_eq!(posted["reachability_enabled"], false);
        assert_eq!(posted["default_chat_service_role_sid"], config["default_chat_service_role_sid"]);
        assert_eq!(expect(200, api.get(&path).await), posted);

        // New participants get the new default role.
        let conv = expect(
            201,
            api.post(&format!("/v1/Services/{service}/Conversations"), &[("FriendlyName", "c")])
                .await,
        );
        let p = expect(
            201,
            api.post(
                &format!("/v1/Services/{service}/Conversations/{}/Participants", s(&conv["sid"])),
                &[("Identity", "zoe")],
            )
            .await,
        );
        assert_eq!(p["role_sid"], admin.as_str());

        let (status, body) = api.post(&path, &[("ReachabilityEnabled", "perhaps")]).await;
        assert_eq!(status, 400, "{body}");
    }
    expect_error(404, NOT_FOUND, api.get(&format!("/v1/Services/{UNKNOWN_IS}/Configuration")).await);
}

#[tokio::test]
async fn services_create_list_fetch_delete() {
    let (_server, api) = start().await;
    let list = expect(200, api.get("/v1/Services").await);
    assert_eq!(field_of_items(&list, "sid"), [SERVICE_SID]);
    assert_eq!(items(&list)[0]["friendly_name"], "Rehearsal default service");

    let created = expect(201, api.post("/v1/Services", &[("FriendlyName", "Second")]).await);
    assert_sid(&created["sid"], "IS");
    let sid = s(&created["sid"]).to_owned();
    let url = format!("{}/v1/Services/{sid}", api.base());
    assert_eq!(created["account_sid"], ACCOUNT_SID);
    assert_eq!(created["friendly_name"], "Second");
    assert_eq!(created["url"], url.as_str());
    assert_eq!(created["links"]["conversations"], format!("{url}/Conversations"));
    assert_eq!(created["links"]["users"], format!("{url}/Users"));
    assert_eq!(created["links"]["roles"], format!("{url}/Roles"));
    assert_eq!(created["links"]["configuration"], format!("{url}/Configuration"));
    assert_eq!(expect(200, api.get(&format!("/v1/Services/{sid}")).await), created);
    let list = expect(200, api.get("/v1/Services").await);
    assert_eq!(field_of_items(&list, "sid"), [SERVICE_SID, sid.as_str()]);
    assert_eq!(items(&list)[1], created);
    expect_error(400, INVALID, api.post("/v1/Services", &[]).await);

    // A new service has its own roles and no content; what is made in it stays in it.
    let roles = expect(200, api.get(&format!("/v1/Services/{sid}/Roles")).await);
    assert_eq!(items(&roles).len(), 4);
    let default_roles = expect(200, api.get("/v1/Roles").await);
    let theirs: BTreeSet<String> = field_of_items(&roles, "sid").into_iter().collect();
    let ours: BTreeSet<String> = field_of_items(&default_roles, "sid").into_iter().collect();
    assert!(theirs.is_disjoint(&ours));
    for list in ["Conversations", "Users"] {
        let body = expect(200, api.get(&format!("/v1/Services/{sid}/{list}")).await);
        assert!(items(&body).is_empty(), "{body}");
    }
    let conv = expect(
        201,
        api.post(&format!("/v1/Services/{sid}/Conversations"), &[("UniqueName", "general")])
            .await,
    );
    assert_eq!(conv["chat_service_sid"], sid.as_str());
    let conv_sid = s(&conv["sid"]).to_owned();
    expect_error(404, NOT_FOUND, api.get(&format!("/v1/Conversations/{conv_sid}")).await);
    assert_ne!(conversation_sid(&api, "general").await, conv_sid);
    let user = expect(201, api.post(&format!("/v1/Services/{sid}/Users"), &[("Identity", "alice")]).await);
    assert_eq!(user["chat_service_sid"], sid.as_str());

    expect(204, api.delete(&format!("/v1/Services/{sid}")).await);
    expect_error(404, NOT_FOUND, api.get(&format!("/v1/Services/{sid}")).await);
    expect_error(
        404,
        NOT_FOUND,
        api.get(&format!("/v1/Services/{sid}/Conversations/{conv_sid}")).await,
    );
    expect_error(404, NOT_FOUND, api.delete(&format!("/v1/Services/{sid}")).await);
    let list = expect(200, api.get("/v1/Services").await);
    assert_eq!(field_of_items(&list, "sid"), [SERVICE_SID]);

    // The default service cannot be deleted.
    let (status, body) = api.delete(&format!("/v1/Services/{SERVICE_SID}")).await;
    assert_eq!(status, 400, "{body}");
    expect(200, api.get(&format!("/v1/Services/{SERVICE_SID}")).await);
    expect(200, api.get("/v1/Conversations/general").await);
}

// ---------------------------------------------------------------------------------------------
// Error paths

#[tokio::test]
async fn unknown_resources_are_404_with_twilio_body() {
    let (_server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    let mut paths = vec!["/v1/Nope".to_owned()];
    for prefix in prefixes() {
        paths.extend([
            format!("{prefix}/Conversations/{UNKNOWN_CH}"),
            format!("{prefix}/Conversations/no-such-name"),
            format!("{prefix}/Conversations/{UNKNOWN_CH}/Messages"),
            format!("{prefix}/Conversations/{UNKNOWN_CH}/Messages/0"),
            format!("{prefix}/Conversations/{UNKNOWN_CH}/Participants"),
            format!("{prefix}/Conversations/{general}/Messages/{UNKNOWN_IM}"),
            format!("{prefix}/Conversations/{general}/Messages/999"),
            format!("{prefix}/Conversations/{general}/Participants/{UNKNOWN_MB}"),
            format!("{prefix}/Conversations/{general}/Participants/nobody"),
            format!("{prefix}/Users/{UNKNOWN_US}"),
            format!("{prefix}/Users/nobody/Conversations"),
            format!("{prefix}/Users/alice/Conversations/{UNKNOWN_CH}"),
            format!("{prefix}/Roles/{UNKNOWN_RL}"),
        ]);
    }
    paths.extend([
        format!("/v1/Services/{UNKNOWN_IS}"),
        format!("/v1/Services/{UNKNOWN_IS}/Configuration"),
        format!("/v1/Services/{UNKNOWN_IS}/Conversations"),
        format!("/v1/Services/{UNKNOWN_IS}/Conversations/general"),
        format!("/v1/Services/{UNKNOWN_IS}/Users"),
        format!("/v1/Services/{UNKNOWN_IS}/Roles"),
    ]);
    let check = |what: String, (status, body): (u16, Value)| {
        assert_eq!(status, 404, "{what}: {body}");
        assert_eq!(
            body,
            json!({
                "code": 20404,
                "message": body["message"].clone(),
                "more_info": "https://www.twilio.com/docs/errors/20404",
                "status": 404,
            }),
            "{what}"
        );
        assert_error_body(&what, status, &body);
    };
    for path in &paths {
        check(format!("GET {path}"), api.get(path).await);
    }
    for path in [
        format!("/v1/Conversations/{UNKNOWN_CH}"),
        format!("/v1/Conversations/{general}/Messages/{UNKNOWN_IM}"),
        format!("/v1/Conversations/{general}/Participants/{UNKNOWN_MB}"),
        format!("/v1/Users/{UNKNOWN_US}"),
        format!("/v1/Users/alice/Conversations/{UNKNOWN_CH}"),
        format!("/v1/Services/{UNKNOWN_IS}"),
    ] {
        check(format!("DELETE {path}"), api.delete(&path).await);
    }
    for path in [
        format!("/v1/Conversations/{UNKNOWN_CH}"),
        format!("/v1/Conversations/{UNKNOWN_CH}/Messages"),
        format!("/v1/Conversations/{UNKNOWN_CH}/Participants"),
        format!("/v1/Conversations/{general}/Messages/{UNKNOWN_IM}"),
        format!("/v1/Conversations/{general}/Participants/{UNKNOWN_MB}"),
        format!("/v1/Users/{UNKNOWN_US}"),
        format!("/v1/Users/alice/Conversations/{UNKNOWN_CH}"),
        format!("/v1/Services/{UNKNOWN_IS}/Configuration"),
        format!("/v1/Services/{UNKNOWN_IS}/Conversations"),
    ] {
        check(
            format!("POST {path}"),
            api.post(&path, &[("Attributes", "{}"), ("Body", "x"), ("Identity", "x")]).await,
        );
    }
}

#[tokio::test]
async fn invalid_attributes_are_400() {
    let (_server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    let writes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/v1/Conversations".into(), vec![]),
        (format!("/v1/Conversations/{general}"), vec![]),
        (format!("/v1/Conversations/{general}/Participants"), vec![("Identity", "dave")]),
        (format!("/v1/Conversations/{general}/Participants/alice"), vec![]),
        (format!("/v1/Conversations/{general}/Messages"), vec![("Body", "x")]),
        (format!("/v1/Conversations/{general}/Messages/0"), vec![]),
        ("/v1/Users".into(), vec![("Identity", "dave")]),
        ("/v1/Users/alice".into(), vec![]),
    ];
    for (path, params) in &writes {
        for bad in ["{not json", "hello", r#"{"a":1,}"#, "{", r#"{"a":1} trailing"#] {
            let mut form = params.clone();
            form.push(("Attributes", bad));
            let (status, body) = api.post(path, &form).await;
            assert_eq!(status, 400, "POST {path} Attributes={bad:?}: {body}");
        }
    }
    // Nothing changed.
    let conversations = expect(200, api.get("/v1/Conversations").await);
    assert_eq!(items(&conversations).len(), 2);
    assert_eq!(items(&conversations)[0]["attributes"], r#"{"topic":"everything"}"#);
    let users = expect(200, api.get("/v1/Users").await);
    assert_eq!(field_of_items(&users, "identity"), ["alice", "bob", "carol"]);
    let messages = expect(200, api.get(&format!("/v1/Conversations/{general}/Messages")).await);
    assert_eq!(items(&messages).len(), 4);
    // Any JSON value is fine.
    for good in ["{}", "[1,2]", r#""text""#] {
        let m = expect(
            201,
            api.post(
                &format!("/v1/Conversations/{general}/Messages"),
                &[("Body", "x"), ("Attributes", good)],
            )
            .await,
        );
        assert_eq!(m["attributes"], good);
    }
}

#[tokio::test]
async fn message_body_limit_is_32_kib() {
    let (_server, api) = start().await;
    let base = "/v1/Conversations/general/Messages";
    let limit = 32 * 1024;
    let fits = "a".repeat(limit);
    let m = expect(201, api.post(base, &[("Body", &fits)]).await);
    assert_eq!(m["body"].as_str().map(str::len), Some(limit));
    let too_long = "a".repeat(limit + 1);
    expect_error(400, 50504, api.post(base, &[("Body", &too_long)]).await);
    expect_error(400, 50504, api.post(&format!("{base}/0"), &[("Body", &too_long)]).await);
    assert_eq!(expect(200, api.get(&format!("{base}/0")).await)["body"], "Welcome to Rehearsal!");
    let list = expect(200, api.get(base).await);
    assert_eq!(items(&list).len(), 5);
}

#[tokio::test]
async fn message_attributes_limit_is_4_kib() {
    let (_server, api) = start().await;
    let base = "/v1/Conversations/general/Messages";
    let sized = |n: usize| format!(r#"{{"k":"{}"}}"#, "a".repeat(n - 8));
    let fits = sized(4096);
    assert_eq!(fits.len(), 4096);
    let m = expect(201, api.post(base, &[("Body", "x"), ("Attributes", &fits)]).await);
    assert_eq!(m["attributes"], fits.as_str());
    let too_long = sized(4097);
    let (status, body) = api.post(base, &[("Body", "x"), ("Attributes", &too_long)]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.post(&format!("{base}/0"), &[("Attributes", &too_long)]).await;
    assert_eq!(status, 400, "{body}");
    let list = expect(200, api.get(base).await);
    assert_eq!(items(&list).len(), 5);
}

#[tokio::test]
async fn page_size_limits_on_messages_and_users() {
    for prefix in prefixes() {
        let (_server, api) = start().await;
        let messages = format!("{prefix}/Conversations/history/Messages");
        let page = expect(200, api.get(&format!("{messages}?PageSize=100")).await);
        assert_eq!(items(&page).len(), 100);
        expect_error(400, INVALID, api.get(&format!("{messages}?PageSize=101")).await);
        expect_error(400, INVALID, api.get(&format!("{messages}?PageSize=0")).await);
        expect_error(400, INVALID, api.get(&format!("{messages}?PageSize=many")).await);
        let page = expect(200, api.get(&format!("{prefix}/Users?PageSize=50")).await);
        assert_eq!(page["meta"]["page_size"], 50);
        expect_error(400, INVALID, api.get(&format!("{prefix}/Users?PageSize=51")).await);
    }
}

/// The largest `PageSize` Twilio's spec allows on the list at `path`.
fn spec_page_size_max(path: &str) -> u64 {
    let spec = Spec::get();
    let template = spec.path_template(path).unwrap_or_else(|| panic!("{path} is not in the spec"));
    spec.document()["paths"][template]["get"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "PageSize")
        .and_then(|p| p["schema"]["maximum"].as_u64())
        .unwrap_or_else(|| panic!("{template}: no PageSize maximum in the spec"))
}

#[tokio::test]
async fn page_sizes_follow_the_spec() {
    let (_server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    // The brief's own numbers, before the data-driven check.
    assert_eq!(spec_page_size_max("/v1/Conversations/x/Messages"), 100);
    assert_eq!(spec_page_size_max("/v1/Users"), 50);
    let mut lists = Vec::new();
    for prefix in prefixes() {
        lists.extend([
            format!("{prefix}/Conversations?"),
            format!("{prefix}/Conversations/{general}/Messages?"),
            format!("{prefix}/Conversations/{general}/Participants?"),
            format!("{prefix}/Users?"),
            format!("{prefix}/Users/alice/Conversations?"),
            format!("{prefix}/Roles?"),
            format!("{prefix}/ParticipantConversations?Identity=alice&"),
        ]);
    }
    lists.push("/v1/Services?".to_owned());
    let mut failures = Vec::new();
    for list in &lists {
        let max = spec_page_size_max(list);
        let (status, body) = api.get(&format!("{list}PageSize={max}")).await;
        if status != 200 {
            failures.push(format!("GET {list}PageSize={max} (the spec's maximum) -> {status} {body}"));
        } else if body["meta"]["page_size"] != max {
            failures.push(format!("GET {list}PageSize={max}: meta.page_size = {}", body["meta"]["page_size"]));
        }
        for bad in [(max + 1).to_string(), "0".into(), "-1".into(), "ten".into()] {
            let (status, body) = api.get(&format!("{list}PageSize={bad}")).await;
            if status != 400 {
                failures.push(format!(
                    "GET {list}PageSize={bad} -> {status}, expected 400 (spec maximum {max}): {}",
                    body["meta"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "PageSize limits differ from Twilio's spec:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn bad_page_tokens_are_400() {
    let (_server, api) = start().await;
    let base = "/v1/Conversations/history/Messages";
    for token in ["garbage", "PA", "PAxyz", "PA!!!!", "PZYTE"] {
        expect_error(400, INVALID, api.get(&format!("{base}?PageToken={token}")).await);
    }
    // A token is only good for the order it was made for.
    let asc = expect(200, api.get(&format!("{base}?PageSize=10")).await);
    let next = s(&asc["meta"]["next_page_url"]).to_owned();
    let token = next
        .split("PageToken=")
        .nth(1)
        .expect("a PageToken")
        .split('&')
        .next()
        .unwrap_or_default()
        .to_owned();
    expect(200, api.get(&format!("{base}?PageSize=10&PageToken={token}")).await);
    expect_error(
        400,
        INVALID,
        api.get(&format!("{base}?PageSize=10&Order=desc&PageToken={token}")).await,
    );
    expect_error(400, INVALID, api.get("/v1/Conversations?PageToken=garbage").await);
    expect_error(400, INVALID, api.get("/v1/Users?PageToken=garbage").await);
    expect_error(400, INVALID, api.get(&format!("{base}?Page=minus-one")).await);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let (_server, api) = start().await;
    let r = api
        .post_raw("/v1/Conversations", "application/json", br#"{"FriendlyName":"x"}"#.to_vec())
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let list = expect(200, api.get("/v1/Conversations").await);
    assert_eq!(items(&list).len(), 2, "nothing was created");
}

#[tokio::test]
async fn wrong_methods_get_a_twilio_405() {
    let (_server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    let mut failures = Vec::new();
    for (method, path) in [
        (Method::PUT, "/v1/Conversations".to_owned()),
        (Method::PATCH, format!("/v1/Conversations/{general}")),
        (Method::PUT, format!("/v1/Conversations/{general}/Messages/0")),
        (Method::DELETE, "/v1/Roles".to_owned()),
        (Method::POST, "/v1/ParticipantConversations?Identity=alice".to_owned()),
        (Method::DELETE, "/v1/Configuration".to_owned()),
    ] {
        let r = api.send_unchecked(method.clone(), &path, None).await;
        let expected = json!({
            "code": 20004,
            "message": r.body["message"].clone(),
            "more_info": "https://www.twilio.com/docs/errors/20004",
            "status": 405,
        });
        if r.status != 405 || r.body != expected || !r.body["message"].is_string() {
            failures.push(format!("{method} {path} -> {} {}", r.status, r.body));
        }
    }
    assert!(
        failures.is_empty(),
        "expected 405 with Twilio's error body (code 20004):\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn undecodable_path_segments_get_a_twilio_error_body() {
    let (_server, api) = start().await;
    let mut failures = Vec::new();
    for path in [
        "/v1/Conversations/%FF",
        "/v1/Conversations/general/Messages/%FF",
        "/v1/Users/%C3%28",
        "/v1/Services/%FF/Conversations",
    ] {
        let r = api.send_unchecked(Method::GET, path, None).await;
        // Nothing has such a name: Twilio answers 404 with its error body.
        let ok = r.status == 404 && r.body.is_object() && r.body["code"] == 20404;
        if !ok {
            failures.push(format!(
                "GET {path} -> {} {:?} {}",
                r.status,
                r.headers.get(reqwest::header::CONTENT_TYPE),
                short(&r.body)
            ));
        }
    }
    // Above all, an undecodable service SID must not fall back to the default service.
    let r = api
        .send_unchecked(Method::POST, "/v1/Services/%FF/Conversations", Some(&[("UniqueName", "stray")]))
        .await;
    if r.status < 400 {
        failures.push(format!("POST /v1/Services/%FF/Conversations -> {} {}", r.status, short(&r.body)));
    }
    let (status, _) = api.get("/v1/Conversations/stray").await;
    if status != 404 {
        failures.push("POST /v1/Services/%FF/Conversations created `stray` in the default service".to_owned());
    }
    assert!(
        failures.is_empty(),
        "expected 404 with Twilio's error body:\n{}",
        failures.join("\n")
    );
}

/// The keys of each `links` object are those of Twilio's own examples in the spec.
#[tokio::test]
async fn links_match_twilio_examples() {
    let (_server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    let spec = Spec::get();
    let example_links = |template: &str| -> BTreeSet<String> {
        let examples = &spec.document()["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["examples"];
        let example = examples
            .as_object()
            .and_then(|e| e.values().next())
            .map(|e| &e["value"])
            .expect("an example");
        example["links"].as_object().expect("links").keys().cloned().collect()
    };
    let mut failures = Vec::new();
    for (path, template) in [
        ("/v1/Conversations/general".to_owned(), "/v1/Conversations/{Sid}"),
        (
            format!("/v1/Conversations/{general}/Messages/0"),
            "/v1/Conversations/{ConversationSid}/Messages/{Sid}",
        ),
        ("/v1/Users/alice".to_owned(), "/v1/Users/{Sid}"),
        (
            format!("/v1/Users/alice/Conversations/{general}"),
            "/v1/Users/{UserSid}/Conversations/{ConversationSid}",
        ),
        (format!("/v1/Services/{SERVICE_SID}"), "/v1/Services/{Sid}"),
        (
            format!("/v1/Services/{SERVICE_SID}/Configuration"),
            "/v1/Services/{ChatServiceSid}/Configuration",
        ),
        ("/v1/Configuration".to_owned(), "/v1/Configuration"),
    ] {
        let body = expect(200, api.get(&path).await);
        let got: BTreeSet<String> = body["links"].as_object().expect("links").keys().cloned().collect();
        let expected = example_links(template);
        if got != expected {
            failures.push(format!("GET {path}: links {got:?}, Twilio's example has {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_basic_auth_scheme_is_case_insensitive() {
    let (_server, api) = start().await;
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    };
    // RFC 7235 §2.1: the scheme is matched case-insensitively.
    let mut failures = Vec::new();
    for scheme in ["Basic", "basic", "BASIC"] {
        let r = api
            .with_auth(Auth::Header(format!("{scheme} {encoded}")))
            .send_unchecked(Method::GET, "/v1/Roles", None)
            .await;
        if r.status != 200 {
            failures.push(format!("Authorization: {scheme} … -> {} {}", r.status, r.body));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn unknown_role_sids_are_refused_without_side_effects() {
    let (_server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    let participants = format!("/v1/Conversations/{general}/Participants");
    let config = format!("/v1/Services/{SERVICE_SID}/Configuration");
    let before = service_configuration(&api, SERVICE_SID).await;
    let mut failures = Vec::new();
    for (path, form) in [
        (participants.as_str(), vec![("Identity", "zed"), ("RoleSid", UNKNOWN_RL)]),
        (&format!("{participants}/alice"), vec![("RoleSid", UNKNOWN_RL)]),
        ("/v1/Users", vec![("Identity", "zed"), ("RoleSid", UNKNOWN_RL)]),
        ("/v1/Users/alice", vec![("RoleSid", UNKNOWN_RL)]),
        (config.as_str(), vec![("DefaultConversationRoleSid", UNKNOWN_RL)]),
    ] {
        let (status, body) = api.post(path, &form).await;
        assert!((400..500).contains(&status), "POST {path}: {status} {body}");
        // Whatever the status, the error must not say that the resource posted to is missing.
        let message = s(&body["message"]);
        if message.contains(&format!("{path} was not found")) || status != 400 {
            failures.push(format!("POST {path} RoleSid={UNKNOWN_RL} -> {status} {body}"));
        }
    }
    expect_error(404, NOT_FOUND, api.get(&format!("{participants}/zed")).await);
    expect_error(404, NOT_FOUND, api.get("/v1/Users/zed").await);
    assert_eq!(service_configuration(&api, SERVICE_SID).await, before);
    let alice = expect(200, api.get(&format!("{participants}/alice")).await);
    assert_eq!(alice["role_sid"], before["default_conversation_role_sid"]);
    assert!(
        failures.is_empty(),
        "an unknown RoleSid is a bad parameter (400), not a missing resource:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Wire shapes

/// Replaces a Twilio REST date (`2024-01-02T03:04:05Z`) by `[date]`; anything else, `null`
/// included, stays visible in the snapshot.
fn date() -> insta::internals::Redaction {
    insta::dynamic_redaction(|value, _path| {
        let is_date = value.as_str().is_some_and(|s| {
            let b = s.as_bytes();
            b.len() == 20
                && b.iter().enumerate().all(|(i, c)| match i {
                    4 | 7 => *c == b'-',
                    10 => *c == b'T',
                    13 | 16 => *c == b':',
                    19 => *c == b'Z',
                    _ => c.is_ascii_digit(),
                })
        });
        if is_date {
            insta::internals::Content::from("[date]")
        } else {
            value
        }
    })
}

/// Dates change with the clock; the port is replaced before (see `support::portless`).
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            ".**.date_created" => date(),
            ".**.date_updated" => date(),
            ".**.last_read_timestamp" => date(),
            ".**.conversation_date_created" => date(),
            ".**.conversation_date_updated" => date(),
        })
    };
}

#[tokio::test]
async fn response_shapes() {
    let (server, api) = start().await;
    let general = conversation_sid(&api, "general").await;
    let shot = |v: &Value| portless(&server, v);

    snapshot!("conversation", shot(&expect(200, api.get("/v1/Conversations/general").await)));
    snapshot!(
        "participant",
        shot(&expect(
            200,
            api.get(&format!("/v1/Conversations/{general}/Participants/alice")).await
        ))
    );
    snapshot!(
        "message_with_media",
        shot(&expect(200, api.get(&format!("/v1/Conversations/{general}/Messages/2")).await))
    );
    snapshot!(
        "service_scoped_message",
        shot(&expect(
            200,
            api.get(&format!("/v1/Services/{SERVICE_SID}/Conversations/{general}/Messages/1"))
                .await
        ))
    );
    snapshot!("user", shot(&expect(200, api.get("/v1/Users/alice").await)));
    let roles = expect(200, api.get("/v1/Roles").await);
    snapshot!("role", shot(&items(&roles)[0]));
    snapshot!("configuration", shot(&expect(200, api.get("/v1/Configuration").await)));
    snapshot!(
        "service_configuration",
        shot(&expect(200, api.get(&format!("/v1/Services/{SERVICE_SID}/Configuration")).await))
    );
    snapshot!("service", shot(&expect(200, api.get(&format!("/v1/Services/{SERVICE_SID}")).await)));
    snapshot!(
        "user_conversation",
        shot(&expect(200, api.get(&format!("/v1/Users/alice/Conversations/{general}")).await))
    );
    snapshot!(
        "participant_conversations_list",
        shot(&expect(200, api.get("/v1/ParticipantConversations?Identity=carol").await))
    );
    let page = expect(200, api.get(&format!("/v1/Conversations/{general}/Participants?PageSize=2")).await);
    snapshot!("participants_list_page", shot(&page));
    let next = expect(200, api.get(s(&page["meta"]["next_page_url"])).await);
    snapshot!("participants_list_next_page", shot(&next));

    // Resources created here get SIDs that depend on the order of operations: name them.
    let sms = expect(
        201,
        api.post(
            &format!("/v1/Conversations/{general}/Participants"),
            &[
                ("MessagingBinding.Address", "+15558675310"),
                ("MessagingBinding.ProxyAddress", "+15017122661"),
            ],
        )
        .await,
    );
    let sms = replace_strings(&shot(&sms), &[(s(&sms["sid"]), "[participant_sid]")]);
    snapshot!("sms_participant", sms);
    let created = expect(201, api.post("/v1/Conversations", &[("FriendlyName", "Fresh")]).await);
    let created = replace_strings(&shot(&created), &[(s(&created["sid"]), "[conversation_sid]")]);
    snapshot!("created_conversation", created);

    let error = api.get(&format!("/v1/Conversations/{UNKNOWN_CH}")).await;
    snapshot!("not_found", error.1);
}
