//! Authentication of every HTTP request, before any handler runs: the `Authorization` header
//! and the peer address go to [`vna_auth::Authenticator`]; the principal it gives is put in the
//! request for [`crate::Authed`]. Failures are answered here (RFC 6750 §3): 401 with
//! `WWW-Authenticate: Bearer` (and `error="invalid_token"` when a credential was sent), 429
//! with `Retry-After` for a source over its failure budget, 503 when the identity provider
//! cannot be reached. A principal without the permission an operation needs gets 403 from
//! the archive's check, through the error table.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use vna_auth::{AuthError, Authenticator};

/// Wraps `router` so that every request is authenticated. The server must be run with
/// `into_make_service_with_connect_info::<SocketAddr>()`; without the peer address a request
/// is treated as remote.
pub fn layer(router: axum::Router, auth: Arc<Authenticator>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(auth, authenticate))
}

async fn authenticate(State(auth): State<Arc<Authenticator>>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let header_value = request.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
    // A signed link may come as the `link` query parameter (an <img src> in the patient record
    // cannot send a header); it is taken out of the query before any handler parses it.
    let from_query = if header_value.is_none() { take_link(&mut request) } else { None };
    let authorization = header_value.or(from_query.map(|l| format!("Bearer {l}")));
    match auth.authenticate(authorization.as_deref(), peer).await {
        Ok(principal) => {
            request.extensions_mut().insert(Arc::new(principal.via("dicomweb", peer.to_canonical().to_string())));
            next.run(request).await
        }
        Err(e) => refusal(&e),
    }
}

/// Removes `link=…` from the request's query and returns its value.
fn take_link(request: &mut Request) -> Option<String> {
    let query = request.uri().query()?;
    let mut link = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("link=") {
            Some(v) if link.is_none() => {
                link = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let link = link?;
    let path = request.uri().path();
    let rebuilt = if kept.is_empty() { path.to_owned() } else { format!("{path}?{}", kept.join("&")) };
    *request.uri_mut() = rebuilt.parse().ok()?;
    Some(link)
}

fn refusal(e: &AuthError) -> Response {
    let text =
        |status: StatusCode, message: String| (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response();
    match e {
        AuthError::Missing => {
            let mut r = text(StatusCode::UNAUTHORIZED, e.to_string());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vna\""));
            r
        }
        AuthError::Invalid(_) => {
            let mut r = text(StatusCode::UNAUTHORIZED, e.to_string());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vna\", error=\"invalid_token\""));
            r
        }
        AuthError::RateLimited { retry_after } => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, e.to_string());
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        AuthError::Unavailable => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}
