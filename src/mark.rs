//! The mark request-start leaves for request-done in this module's slot of
//! `r->request_config`: an integer, never an allocation.
//!
//! The mark tells request-done whether the request ever reached request-start, the request's
//! id if request-start fired, and whether its connection runs TLS (so that Apache's
//! ssl_conn_is_ssl hooks run once per traced request, not twice).

/// What request-start left in the slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mark {
    /// request-start never ran for this request (Apache rejected it while reading it).
    NoStart,
    /// request-start ran, but its probe was not traced: no id was taken.
    Untraced,
    /// request-start fired with this id, on a connection that runs TLS or not.
    Fired { id: u64, tls: bool },
}

impl Mark {
    /// The slot's value: 0, all ones, or `id << 1 | tls` (ids are below 2^63: a pid of at
    /// most 22 bits above 40 bits of count, see `crate::ids`; the module is 64-bit only).
    pub(crate) fn encode(self) -> usize {
        match self {
            Mark::NoStart => 0,
            Mark::Untraced => usize::MAX,
            Mark::Fired { id, tls } => ((id as usize) << 1) | usize::from(tls),
        }
    }

    pub(crate) fn decode(v: usize) -> Mark {
        match v {
            0 => Mark::NoStart,
            usize::MAX => Mark::Untraced,
            v => Mark::Fired {
                id: (v >> 1) as u64,
                tls: v & 1 != 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mark;

    #[test]
    fn marks_survive_the_slot() {
        let pid_max = 1u64 << 22; // Linux's highest pid_max
        for mark in [
            Mark::NoStart,
            Mark::Untraced,
            Mark::Fired { id: 1, tls: false },
            Mark::Fired { id: 1, tls: true },
            Mark::Fired {
                id: (77 << 40) | 4097,
                tls: true,
            },
            Mark::Fired {
                id: (pid_max << 40) | ((1 << 40) - 1),
                tls: false,
            },
            Mark::Fired {
                id: (pid_max << 40) | ((1 << 40) - 1),
                tls: true,
            },
        ] {
            assert_eq!(Mark::decode(mark.encode()), mark, "{mark:?}");
        }
        assert_eq!(Mark::NoStart.encode(), 0, "an untouched slot is NULL");
    }
}
