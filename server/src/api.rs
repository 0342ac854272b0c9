//! The HTTP handlers: Mastodon's client API (v1) over an `Engine`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use feedcore::{Engine, ListId, NewNotice, NoticeId, Page, Scope, TimelinePage, UserId};

use crate::accounts::{Account, AccountError, Accounts};
use crate::backend::{self, Backend, streams};
use crate::compose::{self, Params, STATUS_CHARS_MAX};
use crate::json::{self, Urls};
use crate::paging::{self, PageQuery};

/// Largest request body accepted, in bytes (a status is at most 500 characters).
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// What every handler shares.
pub struct App {
    /// The store.
    pub engine: Arc<Engine>,
    /// Accounts and tokens.
    pub accounts: Accounts,
    /// Where home timelines live.
    pub backend: Backend,
    /// What links point at.
    pub urls: Urls,
    /// The user id that unauthenticated requests read the public and tag timelines
    /// as: one past the accounts' ids, so no account follows, blocks or mutes it.
    pub anonymous: u32,
}

/// An error answered as Mastodon does: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The text of the `error` field.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: a parameter or body that does not parse.
    pub fn bad_request(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401, Mastodon's words for a missing, unknown or malformed token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "The access token is invalid")
    }

    /// 404, Mastodon's words.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Record not found")
    }

    /// 422: understood but refused (validation).
    pub fn unprocessable(message: String) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 501: a request this server understands but does not serve.
    pub fn not_implemented(message: String) -> ApiError {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    /// 503: a store the request needs is failing.
    pub fn unavailable(message: String) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<feedcore::Error> for ApiError {
    fn from(e: feedcore::Error) -> ApiError {
        use feedcore::Error as E;
        match &e {
            E::InvalidNotice { reason } => {
                ApiError::unprocessable(format!("Validation failed: {reason}"))
            }
            E::UnknownNotice { .. }
            | E::UnknownUser { .. }
            | E::UnknownList { .. }
            | E::UnknownTag { .. }
            | E::NotOwner { .. } => ApiError::not_found(),
            E::InvalidName { reason } => {
                ApiError::unprocessable(format!("Validation failed: {reason}"))
            }
            E::TooMany { .. } => ApiError::unprocessable(format!("Validation failed: {e}")),
            E::InvalidRelation { reason } => ApiError::new(StatusCode::FORBIDDEN, reason.clone()),
            E::InvalidPage { reason } => ApiError::bad_request(reason.clone()),
            E::DuplicateUri { .. } => ApiError::unprocessable(e.to_string()),
            _ => {
                eprintln!("feedcore error: {e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, json::error_body(&self.message))
    }
}

type Reply = Result<Response, ApiError>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn ok(body: Vec<u8>) -> Reply {
    Ok(json_response(StatusCode::OK, body))
}

/// The router of every endpoint.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/accounts", post(create_account))
        .route(
            "/api/v1/accounts/verify_credentials",
            get(verify_credentials),
        )
        .route("/api/v1/accounts/{id}", get(get_account))
        .route("/api/v1/accounts/{id}/{action}", post(relate))
        .route("/api/v1/statuses", post(post_status))
        .route(
            "/api/v1/statuses/{id}",
            get(get_status).delete(delete_status),
        )
        .route("/api/v1/timelines/home", get(home))
        .route("/api/v1/timelines/public", get(public))
        .route("/api/v1/timelines/tag/{tag}", get(tag))
        .route("/api/v1/timelines/list/{id}", get(list))
        .route("/api/v1/lists", get(lists).post(create_list))
        .route("/api/v1/lists/{id}", get(get_list))
        .route(
            "/api/v1/lists/{id}/accounts",
            get(list_accounts)
                .post(list_accounts_add)
                .delete(list_accounts_remove),
        )
        .route("/api/v1/instance", get(instance_v1))
        .route("/api/v1/instance/", get(instance_v1))
        .route("/api/v2/instance", get(instance_v2))
        .route("/api/v2/instance/", get(instance_v2))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(app)
}

async fn fallback() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here"),
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The account of the bearer token; 401 without a valid one.
fn auth(app: &App, headers: &HeaderMap) -> Result<Arc<Account>, ApiError> {
    optional_auth(app, headers)?.ok_or_else(ApiError::unauthorized)
}

/// The account of the bearer token, or `None` without an `Authorization` header;
/// 401 for a token that is given but unknown or malformed.
fn optional_auth(app: &App, headers: &HeaderMap) -> Result<Option<Arc<Account>>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized())?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(ApiError::unauthorized()),
    };
    app.accounts
        .authenticate(token)
        .map(Some)
        .ok_or_else(ApiError::unauthorized)
}

fn body_params(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Params, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("the request body could not be read: {}", e.body_text()),
        )
    })?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Params::parse(kind, &body).map_err(|reason| {
        if reason.starts_with("unsupported Content-Type") {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason)
        } else {
            ApiError::bad_request(reason)
        }
    })
}

fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(p)| p).map_err(|_| ApiError::not_found())
}

fn path_pair(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    path.map(|Path(p)| p).map_err(|_| ApiError::not_found())
}

/// A status id from a path: a positive integer, else 404 (as Mastodon's lookup).
fn status_id(text: &str) -> Result<NoticeId, ApiError> {
    match text.parse::<u64>() {
        Ok(id) if id >= 1 => Ok(NoticeId(id)),
        _ => Err(ApiError::not_found()),
    }
}

/// An account id from a path: an existing account, else 404.
fn account_id(app: &App, text: &str) -> Result<Arc<Account>, ApiError> {
    text.parse::<u32>()
        .ok()
        .and_then(|id| app.accounts.get(id))
        .ok_or_else(ApiError::not_found)
}

/// Runs a call that may wait for an fsync without stalling the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ---- accounts ----

async fn create_account(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let params = body_params(&headers, body)?;
    let Some(username) = params.get("username") else {
        return Err(ApiError::unprocessable(
            "Validation failed: Username can't be blank".into(),
        ));
    };
    let now = now_ms();
    let made = blocking(|| app.accounts.create(&[username], now)).map_err(|e| match e {
        AccountError::Invalid(reason) => ApiError::unprocessable(reason),
        AccountError::Full => ApiError::unprocessable(format!("Validation failed: {e}")),
        AccountError::Io(reason) => {
            eprintln!("accounts: {reason}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason)
        }
    })?;
    let (_, token) = &made[0];
    ok(serde_json::to_vec(&serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "scope": "read write follow push",
        "created_at": now / 1000,
    }))
    .expect("a json! value serialises"))
}

async fn verify_credentials(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let me = auth(&app, &headers)?;
    let mut out = Vec::with_capacity(1024);
    json::account(&mut out, &app.engine, &app.urls, &me, true);
    ok(out)
}

async fn get_account(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    optional_auth(&app, &headers)?;
    let a = account_id(&app, &path_param(path)?)?;
    let mut out = Vec::with_capacity(1024);
    json::account(&mut out, &app.engine, &app.urls, &a, false);
    ok(out)
}

async fn relate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let (id, action) = path_pair(path)?;
    let other = account_id(&app, &id)?;
    let (a, b) = (UserId(me.id), UserId(other.id));
    let e = &app.engine;
    let new_follow = match action.as_str() {
        "follow" => blocking(|| e.follow(a, b))?,
        "unfollow" => blocking(|| e.unfollow(a, b)).map(|_| false)?,
        "block" => blocking(|| e.block(a, b)).map(|_| false)?,
        "unblock" => blocking(|| e.unblock(a, b)).map(|_| false)?,
        "mute" => blocking(|| e.mute(a, b)).map(|_| false)?,
        "unmute" => blocking(|| e.unmute(a, b)).map(|_| false)?,
        _ => return Err(ApiError::not_found()),
    };
    if new_follow {
        app.backend.followed(&app.engine, me.id, other.id).await?;
    }
    let mut out = Vec::with_capacity(400);
    json::relationship(&mut out, &app.engine, me.id, other.id);
    ok(out)
}

// ---- statuses ----

async fn post_status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let params = body_params(&headers, body)?;
    let Some(text) = params.get("status") else {
        return Err(ApiError::unprocessable(
            "Validation failed: Text can't be blank".into(),
        ));
    };
    if text.chars().count() > STATUS_CHARS_MAX {
        return Err(ApiError::unprocessable(format!(
            "Validation failed: Text character limit of {STATUS_CHARS_MAX} exceeded"
        )));
    }
    let scope = compose::scope(params.get("visibility")).map_err(ApiError::unprocessable)?;
    let reply_to = match params.get("in_reply_to_id") {
        None => None,
        Some(id) => {
            let id = status_id(id)?;
            if !backend::may_see(&app.engine, Some(me.id), id) {
                return Err(ApiError::not_found());
            }
            Some(id)
        }
    };
    let (mentions, tags) = compose::mentions_and_tags(text, &app.accounts);
    let addressees =
        (scope == Scope::Addressees).then(|| mentions.iter().map(|m| m.0).collect::<Vec<u32>>());
    let notice = NewNotice {
        author: UserId(me.id),
        body: text.to_string(),
        created_at_ms: now_ms(),
        reply_to,
        mentions,
        tags,
        scope,
        ..Default::default()
    };
    let id = blocking(|| app.engine.post(notice))?;
    app.accounts.count_status(me.id, 1);
    app.backend.posted(id, me.id, addressees);
    render_one(&app, id, false)
}

fn render_one(app: &App, id: NoticeId, text: bool) -> Reply {
    let Some(n) = app.engine.notice(id) else {
        return Err(ApiError::not_found());
    };
    let mut out = Vec::with_capacity(1500);
    json::status(&mut out, &app.engine, &app.accounts, &app.urls, &n, text);
    ok(out)
}

async fn get_status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let me = optional_auth(&app, &headers)?;
    let id = status_id(&path_param(path)?)?;
    if !backend::may_see(&app.engine, me.map(|a| a.id), id) {
        return Err(ApiError::not_found());
    }
    render_one(&app, id, false)
}

async fn delete_status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let id = status_id(&path_param(path)?)?;
    let mine = app.engine.notice(id).is_some_and(|n| n.author().0 == me.id);
    if !mine {
        return Err(ApiError::not_found());
    }
    // Rendered before it is gone: Mastodon returns the deleted status with its text.
    let reply = render_one(&app, id, true)?;
    blocking(|| app.engine.delete(id))?;
    app.accounts.count_status(me.id, -1);
    Ok(reply)
}

// ---- timelines ----

/// Renders a page of statuses with its `Link` header.
fn timeline_response(app: &App, uri: &Uri, query: &PageQuery, ids: &[u64], more: bool) -> Response {
    let mut out = Vec::with_capacity(64 + ids.len() * 1400);
    out.push(b'[');
    let mut first = true;
    for &id in ids {
        // Deleted between the page and now: left out.
        let Some(n) = app.engine.notice(NoticeId(id)) else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        json::status(&mut out, &app.engine, &app.accounts, &app.urls, &n, false);
    }
    out.push(b']');
    let mut response = json_response(StatusCode::OK, out);
    if let Some(link) = paging::link_header(&app.urls.base, uri.path(), query, ids, more)
        && let Ok(value) = HeaderValue::from_str(&link)
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Reply {
    let me = auth(&app, &headers)?;
    let query = PageQuery::parse(uri.query())?;
    let (app_ref, user) = (&*app, me.id);
    let (ids, more) = paging::serve(&query, move |p: Page| {
        app_ref.backend.home(&app_ref.engine, user, p)
    })
    .await?;
    Ok(timeline_response(&app, &uri, &query, &ids, more))
}

/// Serves a stream that is the same for both backends (feedcore's).
async fn stream(
    app: &App,
    uri: &Uri,
    fetch: impl Fn(Page) -> Result<TimelinePage, ApiError>,
) -> Reply {
    let query = PageQuery::parse(uri.query())?;
    let fetch = &fetch;
    let (ids, more) = paging::serve(&query, move |p: Page| std::future::ready(fetch(p))).await?;
    Ok(timeline_response(app, uri, &query, &ids, more))
}

/// A boolean query parameter (absent is false; see [`compose::truthy`]).
fn query_flag(uri: &Uri, key: &str) -> bool {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .is_some_and(|(_, v)| compose::truthy(v))
}

/// The reader of a stream open to anyone: the token's account, or the anonymous
/// reader without a token (a token given but unknown is still 401).
fn reader(app: &App, headers: &HeaderMap) -> Result<u32, ApiError> {
    Ok(optional_auth(app, headers)?.map_or(app.anonymous, |a| a.id))
}

/// `only_media=true` asks for statuses with media, which this server does not take:
/// an empty page. `remote=true` asks for federated statuses only, which feedcore's
/// streams do not separate: refused rather than answered with local ones.
fn stream_filters(uri: &Uri) -> Result<bool, ApiError> {
    if query_flag(uri, "remote") {
        return Err(ApiError::not_implemented(
            "remote=true is not served: feedcore's public stream does not separate remote statuses"
                .into(),
        ));
    }
    Ok(query_flag(uri, "only_media"))
}

async fn public(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Reply {
    let me = reader(&app, &headers)?;
    let local = query_flag(&uri, "local");
    let nothing = stream_filters(&uri)?;
    stream(&app, &uri, |p| {
        if nothing {
            return Ok(TimelinePage::default());
        }
        streams::public(&app.engine, me, local, p)
    })
    .await
}

async fn tag(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let me = reader(&app, &headers)?;
    let tag = path_param(path)?;
    let nothing = stream_filters(&uri)?;
    // local=true: the tagged statuses written here. This server writes every notice
    // it holds (it does not federate), so the tag stream is already local.
    stream(&app, &uri, |p| {
        if nothing {
            return Ok(TimelinePage::default());
        }
        streams::tag(&app.engine, me, &tag, p)
    })
    .await
}

/// A list id from a path: a number, else 404.
fn list_id(path: Result<Path<String>, PathRejection>) -> Result<ListId, ApiError> {
    path_param(path)?
        .parse::<u32>()
        .map(ListId)
        .map_err(|_| ApiError::not_found())
}

/// The list `list` and its title, when `owner` owns it; 404 otherwise (Mastodon
/// answers another account's list as one that does not exist).
fn owned_list(app: &App, owner: u32, list: ListId) -> Result<String, ApiError> {
    match app.engine.list_info(list) {
        Ok((o, title)) if o.0 == owner => Ok(title),
        Ok(_) => Err(ApiError::not_found()),
        Err(e) => Err(e.into()),
    }
}

async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let list = list_id(path)?;
    stream(&app, &uri, |p| streams::list(&app.engine, me.id, list, p)).await
}

// ---- lists ----

async fn create_list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let params = body_params(&headers, body)?;
    let Some(title) = params.get("title") else {
        return Err(ApiError::unprocessable(
            "Validation failed: Title can't be blank".into(),
        ));
    };
    match params.get("replies_policy") {
        None | Some("list") => {}
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "Validation failed: replies_policy {other:?} is not served: feedcore's lists show the replies to their members and to the accounts their owner follows (\"list\")"
            )));
        }
    }
    if params.get("exclusive").is_some_and(compose::truthy) {
        return Err(ApiError::unprocessable(
            "Validation failed: exclusive lists are not served: a list's members stay in its owner's home timeline".into(),
        ));
    }
    let list = blocking(|| app.engine.create_list(UserId(me.id), title))?;
    let mut out = Vec::with_capacity(128);
    json::list(&mut out, list.0, title);
    ok(out)
}

async fn lists(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let me = auth(&app, &headers)?;
    let mut out = vec![b'['];
    // Lists are few beside notices; a scan of the registry is what an example needs.
    for id in 0..app.engine.streams_stats().lists {
        let Ok((owner, title)) = app.engine.list_info(ListId(id)) else {
            continue;
        };
        if owner.0 == me.id {
            if out.len() > 1 {
                out.push(b',');
            }
            json::list(&mut out, id, &title);
        }
    }
    out.push(b']');
    ok(out)
}

async fn get_list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let list = list_id(path)?;
    let title = owned_list(&app, me.id, list)?;
    let mut out = Vec::with_capacity(128);
    json::list(&mut out, list.0, &title);
    ok(out)
}

async fn list_accounts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let list = list_id(path)?;
    owned_list(&app, me.id, list)?;
    let mut out = vec![b'['];
    for member in app.engine.list_members(list)? {
        let Some(a) = app.accounts.get(member.0) else {
            continue;
        };
        if out.len() > 1 {
            out.push(b',');
        }
        json::account(&mut out, &app.engine, &app.urls, &a, false);
    }
    out.push(b']');
    ok(out)
}

/// The accounts of `account_ids` (a form's `account_ids[]` or a JSON array); 404
/// when one does not exist, so nothing is changed.
fn account_ids(app: &App, params: &Params) -> Result<Vec<UserId>, ApiError> {
    params
        .all("account_ids")
        .into_iter()
        .map(|id| account_id(app, id).map(|a| UserId(a.id)))
        .collect()
}

async fn list_accounts_add(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let list = list_id(path)?;
    owned_list(&app, me.id, list)?;
    let members = account_ids(&app, &body_params(&headers, body)?)?;
    for m in members {
        blocking(|| app.engine.list_add(list, m))?;
    }
    ok(b"{}".to_vec())
}

async fn list_accounts_remove(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let me = auth(&app, &headers)?;
    let list = list_id(path)?;
    owned_list(&app, me.id, list)?;
    // Clients send a DELETE's parameters in the query or in the body.
    let mut members = account_ids(&app, &body_params(&headers, body)?)?;
    let query =
        Params::parse(None, uri.query().unwrap_or("").as_bytes()).map_err(ApiError::bad_request)?;
    members.extend(account_ids(&app, &query)?);
    for m in members {
        blocking(|| app.engine.list_remove(list, m))?;
    }
    ok(b"{}".to_vec())
}

// ---- instance ----

async fn instance_v1(State(app): State<Arc<App>>) -> Reply {
    let statuses = app.engine.log().stats().notices;
    ok(json::instance_v1(&app.urls, app.accounts.len(), statuses))
}

async fn instance_v2(State(app): State<Arc<App>>) -> Reply {
    ok(json::instance_v2(&app.urls, app.accounts.len()))
}
