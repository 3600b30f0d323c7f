//! The JSON responses both HTTP faces send, as plain `http` values: each
//! face turns one into its framework's response with `into_response()`.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use super::RemoteException;

/// `body` (JSON text) with `status` and `Content-Type: application/json`.
pub fn json(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `RemoteException` with Hadoop's status code (500 if that code is not
/// a valid one).
pub fn error(e: &RemoteException) -> Response<String> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, e.to_json())
}
