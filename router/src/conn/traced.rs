//! The mesh trace on messages leaving on a proxy link (ADR 0009): our router id is appended to
//! `x-opt-shoal-trace` in the connection task (in parallel with other connections, not in the core), and only
//! the message's leading sections are rebuilt.

use super::engine::Engine;
use crate::core::api::Msg;

impl Engine {
    /// `msg` with our router id appended to its trace (ADR 0009), and `matched` (the address a pattern
    /// subscription matched) annotated: only its leading sections are rebuilt, the rest stays the received
    /// bytes. A message whose leading sections do not decode goes as it is.
    pub(super) fn traced(&self, msg: Msg, matched: Option<&str>) -> Msg {
        let id = self.ctx.config.router_id();
        let Msg { chunks, charge } = msg;
        let first = match &chunks {
            crate::core::api::Chunks::One(b) => b.clone(),
            crate::core::api::Chunks::Many(v) => v.first().cloned().unwrap_or_default(),
        };
        let rebuilt = match shoal_amqp::message::append_trace_matched(&first, id, matched) {
            Ok((head, rest)) => {
                let mut parts = vec![head, first.slice(rest..)];
                if let crate::core::api::Chunks::Many(v) = &chunks {
                    parts.extend(v.iter().skip(1).cloned());
                }
                Some(parts)
            }
            // The first frame ended inside the leading sections (rare): join the parts and try again.
            Err(_) if matches!(chunks, crate::core::api::Chunks::Many(_)) => {
                let mut whole = bytes::BytesMut::with_capacity(chunks.len());
                for c in chunks.iter() {
                    whole.extend_from_slice(c);
                }
                let whole = whole.freeze();
                shoal_amqp::message::append_trace_matched(&whole, id, matched)
                    .ok()
                    .map(|(head, rest)| vec![head, whole.slice(rest..)])
            }
            Err(_) => None,
        };
        match rebuilt {
            Some(parts) => Msg {
                chunks: crate::core::api::Chunks::Many(parts),
                charge,
            },
            None => {
                tracing::debug!(
                    conn = self.id,
                    "message sections do not decode: sent without a trace"
                );
                Msg { chunks, charge }
            }
        }
    }
}
