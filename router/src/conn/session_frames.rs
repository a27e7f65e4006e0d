//! Session frames from the peer: begin and end, and what a session holds when it goes.

use shoal_amqp::{condition, AmqpError, Begin, End, Performative};

use super::engine::{ConnError, ConnResult, Engine};
use super::session::Session;

impl Engine {
    pub(super) fn session(&mut self, channel: u16) -> Result<&mut Session, ConnError> {
        self.sessions
            .get_mut(channel as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| {
                ConnError::new(
                    condition::NOT_FOUND,
                    format!("no session on channel {channel}"),
                )
            })
    }

    pub(super) fn on_begin(&mut self, channel: u16, begin: Begin) -> ConnResult {
        if let (Some(ours), true) = (begin.remote_channel, self.role.dialled()) {
            // The answer to the session we began on a connection we made.
            let session = self.session(ours)?;
            session.next_incoming_id = begin.next_outgoing_id;
            session.remote_incoming_window = begin.incoming_window;
            session.handle_max = session.handle_max.min(begin.handle_max);
            let initiated = self.initiated_handles();
            let session = self.session(ours)?;
            session.initiated = initiated;
            if ours != channel {
                return Err(ConnError::new(
                    condition::NOT_IMPLEMENTED,
                    "the peer answered our session on another channel",
                ));
            }
            return Ok(());
        }
        if begin.remote_channel.is_some() {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                "begin answers a session we never started",
            ));
        }
        if self
            .sessions
            .get(channel as usize)
            .is_some_and(Option::is_some)
        {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                format!("channel {channel} already has a session"),
            ));
        }
        if channel > self.ctx.config.channel_max {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                format!(
                    "channel {channel} exceeds channel-max {}",
                    self.ctx.config.channel_max
                ),
            ));
        }
        let config = &self.ctx.config;
        let handle_max = self.local_handle_max().min(begin.handle_max);
        let mut session = Session::new(config.session_window, handle_max);
        session.initiated = self.initiated_handles();
        session.next_incoming_id = begin.next_outgoing_id;
        session.remote_incoming_window = begin.incoming_window;
        // Our channel number is the peer's: it is free on our side because we never begin sessions ourselves.
        if self.sessions.len() <= channel as usize {
            self.sessions.resize_with(channel as usize + 1, || None);
        }
        let reply = Begin {
            remote_channel: Some(channel),
            next_outgoing_id: 0,
            incoming_window: config.session_window,
            outgoing_window: u32::MAX,
            handle_max,
            ..Default::default()
        };
        self.sessions[channel as usize] = Some(session);
        self.emit(channel, &Performative::Begin(reply));
        Ok(())
    }

    pub(super) fn on_end(&mut self, channel: u16, end: End) -> ConnResult {
        let session = self.session(channel)?;
        let ending = session.ending;
        if let Some(e) = end.error {
            tracing::info!(
                conn = self.id,
                "peer ended session with {}",
                e.condition.as_str()
            );
        }
        self.release_session(channel);
        if let Some(slot) = self.sessions.get_mut(channel as usize) {
            *slot = None;
        }
        if !ending {
            self.emit(channel, &Performative::End(End { error: None }));
        }
        Ok(())
    }

    /// Give back what a session held (its links, unsettled and blocked deliveries); the slot stays until the
    /// peer's `end`.
    fn release_session(&mut self, channel: u16) {
        let Ok(session) = self.session(channel) else {
            return;
        };
        let links: Vec<u64> = session.links.values().copied().collect();
        for link in links {
            self.drop_link(link);
        }
        let Ok(session) = self.session(channel) else {
            return;
        };
        let unsettled: Vec<_> = session.unsettled.drain(..).flatten().collect();
        let blocked: Vec<_> = session.blocked.drain(..).collect();
        for (link, delivery) in unsettled {
            self.returned(link, delivery);
        }
        for b in blocked {
            if let Some(delivery) = b.delivery {
                self.release(b.link, delivery);
            }
        }
    }

    /// End a session with an error (a session-level protocol violation). Frames the peer sent before it sees
    /// our `end` are ignored until its own `end` arrives.
    pub(super) fn end_session(&mut self, channel: u16, error: AmqpError) {
        let Ok(session) = self.session(channel) else {
            return;
        };
        if session.ending {
            return;
        }
        session.ending = true;
        self.release_session(channel);
        self.emit(channel, &Performative::End(End { error: Some(error) }));
    }
}
