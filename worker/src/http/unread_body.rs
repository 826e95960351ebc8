//! Answers given before the request body was read end the connection, and say so.
//!
//! A request refused on its headers (a wrong token, a declared length over the limit, an
//! unsupported type) or cut off at the size limit leaves the rest of its body unread. hyper
//! then closes the connection after the answer, but without `Connection: close` a keep-alive
//! client (reqwest, Vector, Fluent Bit) may already have sent its next request on it, which
//! then fails as an incomplete message: a good request lost to a bad one before it. With the
//! header, the client opens a new connection instead.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Middleware: `Connection: close` on the answer when the request had a body that was not
/// read to its end.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = match headers.get(header::CONTENT_LENGTH) {
        Some(length) => length.as_bytes() != b"0",
        None => headers.contains_key(header::TRANSFER_ENCODING),
    };
    if !has_body {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(Tracked {
        inner: body,
        finished: finished.clone(),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    // Upgrades (the Loki tail) have no body; a streamed answer is written after this, but
    // every handler here reads what it needs of the body before it answers.
    if !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct Tracked {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.finished.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/ignores", post(|| async { "refused on its headers" }))
            .route(
                "/reads",
                post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            )
            .layer(axum::middleware::from_fn(close_if_body_unread))
    }

    async fn connection_header(path: &str, body: &'static str) -> Option<String> {
        let request = Request::post(path)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        response
            .headers()
            .get(header::CONNECTION)
            .map(|value| value.to_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn only_answers_that_left_a_body_unread_close_the_connection() {
        assert_eq!(
            connection_header("/ignores", "a body").await.as_deref(),
            Some("close")
        );
        assert_eq!(connection_header("/reads", "a body").await, None);
        assert_eq!(
            connection_header("/ignores", "").await,
            None,
            "nothing to leave unread"
        );
    }
}
