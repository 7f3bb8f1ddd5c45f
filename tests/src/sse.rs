//! A Server-Sent Events client for the analysts' stream.

use std::time::Duration;

use crate::TestApp;

/// One parsed Server-Sent Event (or a comment, with `comment` set).
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: bool,
}

/// Splits complete events off the front of `buffer`.
pub fn parse_events(buffer: &mut String) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut event = SseEvent::default();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix(':') {
                let _ = rest;
                event.comment = true;
            } else if let Some(value) = line.strip_prefix("id:") {
                event.id = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("event:") {
                event.event = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("data:") {
                event.data.push_str(value.trim_start());
            }
        }
        events.push(event);
    }
    events
}

/// An open event stream read with reqwest.
pub struct Stream {
    response: reqwest::Response,
    buffer: String,
    parsed: std::collections::VecDeque<SseEvent>,
}

impl Stream {
    pub async fn open(
        app: &TestApp,
        token: &str,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Stream {
        let mut request = app
            .get(&format!("/api/events/stream{query}"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("stream");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("type"),
            "text/event-stream"
        );
        Stream {
            response,
            buffer: String::new(),
            parsed: std::collections::VecDeque::new(),
        }
    }

    /// The next event (comments included), or `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            self.parsed.extend(parse_events(&mut self.buffer));
            if let Some(event) = self.parsed.pop_front() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("no event within 10 s")
                .expect("read");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk?));
        }
    }

    /// The next envelope event, skipping comments.
    pub async fn next_envelope(&mut self) -> Option<SseEvent> {
        loop {
            let event = self.next().await?;
            if !event.comment {
                return Some(event);
            }
        }
    }
}
