//! What the namenode's WebHDFS refuses before it asks the namespace, and
//! the shape of its error answers.

use axum::body::to_bytes;
use axum::http::{Method, StatusCode, Uri};

use super::*;

fn parse(method: Method, uri: &str) -> Result<Call, RemoteException> {
    let uri: Uri = uri.parse().unwrap();
    parse_call(&method, &uri, None)
}

#[test]
fn a_well_formed_request_names_its_op_path_and_user() {
    let call = parse(
        Method::GET,
        "/webhdfs/v1/a%20dir/f?op=open&user.name=alice&offset=3&unknown=1",
    )
    .unwrap();
    assert_eq!(call.op, Op::Open);
    assert_eq!(call.path, "/a dir/f");
    assert_eq!(call.user, "alice");
    assert_eq!(call.params.u64("offset").unwrap(), Some(3));
}

#[test]
fn the_root_and_a_missing_user_take_the_defaults() {
    let call = parse(Method::GET, "/webhdfs/v1?op=GETHOMEDIRECTORY").unwrap();
    assert_eq!(call.path, "/");
    assert_eq!(call.user, "dr.who");
}

#[test]
fn malformed_requests_are_illegal_arguments() {
    for (method, uri) in [
        (Method::GET, "/webhdfs/v1/x?op=NOSUCHOP"),
        (Method::GET, "/webhdfs/v1/x"),
        (Method::PUT, "/webhdfs/v1/x?op=OPEN"),
        (Method::GET, "/webhdfs/v1/a/../etc?op=OPEN"),
        (Method::GET, "/webhdfs/v1/x?op=OPEN&user.name=%2Fbad"),
    ] {
        let e = parse(method.clone(), uri).unwrap_err();
        assert_eq!(e.exception, "IllegalArgumentException", "{method} {uri}");
    }
}

#[tokio::test]
async fn an_error_answer_is_a_remote_exception_with_hadoops_code() {
    let response = response::error(&RemoteException::file_not_found("File /x does not exist."))
        .into_response();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[axum::http::header::CONTENT_TYPE],
        "application/json"
    );
    let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["RemoteException"]["exception"],
        "FileNotFoundException"
    );
    assert_eq!(
        json["RemoteException"]["message"],
        "File /x does not exist."
    );
}
