//! A sender link's credit as the core grants it, for the gateway's own senders (the command relay and the
//! persistent-session keeper): `Command::Grant` adds to it, `Command::Flow` restates it (taking it back,
//! when an address loses its last consumer), counting the transfers the core had not seen yet.

use shoal_router::core::api::{Command, LocalLink};

#[derive(Debug, Default)]
pub(crate) struct SenderCredit {
    credit: u32,
    /// Transfers sent on the link so far (its delivery-count), to read a `Flow`'s `seen` against.
    sent: u32,
}

impl SenderCredit {
    pub fn grant(&mut self, credit: u32) {
        self.credit = self.credit.saturating_add(credit);
    }

    /// The core says the link holds `credit` as of its `seen`-th transfer: those sent since used some of it.
    pub fn restate(&mut self, seen: u32, credit: u32) {
        self.credit = credit.saturating_sub(self.sent.wrapping_sub(seen));
    }

    /// Take the core's `Grant` or `Flow` for the sender `local`; `false` for any other command.
    pub fn on_command(&mut self, local: LocalLink, c: &Command) -> bool {
        match *c {
            Command::Grant { local: l, credit } if l == local => self.grant(credit),
            Command::Flow {
                local: l,
                seen,
                credit,
                ..
            } if l == local => self.restate(seen, credit),
            _ => return false,
        }
        true
    }

    pub fn available(&self) -> bool {
        self.credit > 0
    }

    /// One transfer goes out (the caller checked [`Self::available`]).
    pub fn spend(&mut self) {
        self.credit = self.credit.saturating_sub(1);
        self.sent = self.sent.wrapping_add(1);
    }

    /// The link is gone: a new one starts from nothing.
    pub fn reset(&mut self) {
        *self = SenderCredit::default();
    }
}

#[cfg(test)]
mod tests {
    use super::SenderCredit;

    #[test]
    fn a_restated_credit_counts_transfers_the_core_has_not_seen() {
        let mut c = SenderCredit::default();
        c.grant(3);
        c.spend();
        c.spend();
        // The core took the credit back after seeing one transfer: the second used what was taken back.
        c.restate(1, 0);
        assert!(!c.available());
        c.restate(2, 5);
        assert!(c.available());
        for _ in 0..5 {
            c.spend();
        }
        assert!(!c.available());
        c.reset();
        c.grant(1);
        c.restate(0, 1);
        assert!(c.available(), "a new link counts from zero");
    }
}
