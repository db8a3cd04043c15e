//! Reads the `POST /lab` multipart body into plain parts for
//! [`crate::lab::upload`]. Every byte of the body counts against the size
//! limit (part headers, names and fields the server ignores included), and
//! the number of parts is capped.
//!
//! A refused body is still read to its end, discarding it, up to as many
//! bytes again as the limit: a client that is still sending when the answer
//! comes gets the 413 or 400 rather than a broken connection. A body longer
//! than that is cut off.
//!
//! A body that makes no progress for [`IDLE_LIMIT`] is refused with 408: an
//! upload in flight keeps its session busy (never evicted), so a client that
//! stalled mid-upload (or vanished behind a half-open connection) must not
//! hold the lab for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use futures_util::StreamExt;

use crate::lab::upload::{FilePart, Form, UploadError};

/// Most parts one upload may have (topology, `reuse` and extra files, and
/// any field the server ignores).
pub const MAX_PARTS: usize = 1000;

/// Longest pause between two pieces of an upload's body.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// [`read`], refused with [`UploadError::TooSlow`] when the whole body
/// takes longer than `total` (`--upload-timeout`).
pub async fn read_within(
    request: Request,
    limit: u64,
    total: Duration,
) -> Result<Form, UploadError> {
    tokio::time::timeout(total, read(request, limit))
        .await
        .map_err(|_| UploadError::TooSlow { limit: total })?
}

/// Reads the whole form of `request`, refusing it once the body passes
/// `limit` bytes (413) or [`MAX_PARTS`] parts (400). A body that is not
/// multipart at all is a form error (422), as the original answered.
pub async fn read(request: Request, limit: u64) -> Result<Form, UploadError> {
    let too_large = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::from_stream(counted(
        watched(body, Arc::clone(&stalled)),
        limit,
        Arc::clone(&too_large),
    ));
    let mut multipart = Multipart::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(|rejection| UploadError::Form(rejection.body_text()))?;
    let failed = |error: axum::extract::multipart::MultipartError| {
        if stalled.load(Ordering::Relaxed) {
            UploadError::Stalled { idle: IDLE_LIMIT }
        } else if too_large.load(Ordering::Relaxed) {
            UploadError::TooLarge { limit }
        } else {
            UploadError::Invalid(format!("malformed multipart body: {}", error.body_text()))
        }
    };

    let mut form = Form::default();
    let mut count = 0;
    while let Some(field) = multipart.next_field().await.map_err(&failed)? {
        count += 1;
        if count > MAX_PARTS {
            drain(multipart).await;
            return Err(UploadError::Invalid(format!(
                "Upload has more than {MAX_PARTS} parts"
            )));
        }
        let field_name = field.name().unwrap_or_default().to_string();
        let name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(&failed)?.to_vec();
        let file = FilePart { name, bytes };
        match field_name.as_str() {
            "topology" => form.topology.push(file),
            "extra_files" => form.extra_files.push(file),
            "reuse" => form.reuse = Some(String::from_utf8_lossy(&file.bytes).into_owned()),
            _ => {} // Unknown fields are ignored, as the original did (their bytes counted).
        }
    }
    Ok(form)
}

/// Reads what is left of a refused body, discarding it (bounded by
/// [`counted`]).
async fn drain(mut multipart: Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// The body's chunks, failing (and setting `stalled`) when the next one
/// takes longer than [`IDLE_LIMIT`] to arrive.
fn watched(
    body: Body,
    stalled: Arc<AtomicBool>,
) -> impl futures_util::Stream<Item = Result<Bytes, axum::Error>> {
    futures_util::stream::unfold(Some(body.into_data_stream()), move |data| {
        let stalled = Arc::clone(&stalled);
        async move {
            let mut data = data?;
            match tokio::time::timeout(IDLE_LIMIT, data.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(data))),
                Ok(None) => None,
                Err(_) => {
                    stalled.store(true, Ordering::Relaxed);
                    let error = axum::Error::new(format!("no data for {} s", IDLE_LIMIT.as_secs()));
                    Some((Err(error), None))
                }
            }
        }
    })
}

/// The body's chunks up to `limit` bytes. Past it, `too_large` is set (the
/// multipart parser only reports a stream error) and chunks are discarded,
/// so the parser sees the body end early and fails; past twice the limit
/// the stream fails at once.
fn counted(
    body: impl futures_util::Stream<Item = Result<Bytes, axum::Error>>,
    limit: u64,
    too_large: Arc<AtomicBool>,
) -> impl futures_util::Stream<Item = Result<Bytes, axum::Error>> {
    body.scan(0u64, move |total, chunk| {
        let chunk = chunk.and_then(|bytes| {
            *total += bytes.len() as u64;
            if *total <= limit {
                return Ok(bytes);
            }
            too_large.store(true, Ordering::Relaxed);
            if *total <= limit.saturating_mul(2) {
                Ok(Bytes::new())
            } else {
                Err(axum::Error::new(format!("body larger than {limit} bytes")))
            }
        });
        std::future::ready(Some(chunk))
    })
}
