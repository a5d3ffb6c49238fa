//! Enums kept in the database as words (`kind`, `status` and `outcome` columns): each reads and
//! writes exactly its words, and a word the code does not know is a decode error, not a guess.

/// A stored word no variant of `what` has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
}

/// Declares an enum stored as words: `as_str`, `Display`, `FromStr` and `TryFrom<String>`
/// (what the row decoder uses).
macro_rules! stored_words {
    ($(#[$doc:meta])* $name:ident as $what:literal { $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The word in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::words::UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::store::words::UnknownWord {
                        what: $what,
                        word: s.to_string(),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::store::words::UnknownWord;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

stored_words! {
    /// Why a range is re-read.
    ResyncKind as "resync kind" {
        /// Asked for by an operator (`resync`, SIGUSR1, `run --resync`).
        Resync => "resync",
        /// The daily deep reconcile.
        Reconcile => "reconcile",
    }
}

stored_words! {
    /// Where a resync request stands.
    ResyncStatus as "resync status" {
        Pending => "pending",
        Running => "running",
        Done => "done",
        Failed => "failed",
    }
}

stored_words! {
    /// What a run in the log was.
    RunKind as "run kind" {
        /// A scheduled or one-off catch-up of a stream.
        Poll => "poll",
        /// An operator's resync.
        Resync => "resync",
        /// The deep reconcile.
        Reconcile => "reconcile",
    }
}

impl From<ResyncKind> for RunKind {
    fn from(kind: ResyncKind) -> RunKind {
        match kind {
            ResyncKind::Resync => RunKind::Resync,
            ResyncKind::Reconcile => RunKind::Reconcile,
        }
    }
}

stored_words! {
    /// How a run ended, as the log keeps it.
    RunEnd as "run outcome" {
        CaughtUp => "caught_up",
        Stopped => "stopped",
        Paused => "paused",
        NeedsReauth => "needs_reauth",
        Failed => "failed",
        Skipped => "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_back_and_strangers_are_refused() {
        for end in [RunEnd::CaughtUp, RunEnd::NeedsReauth, RunEnd::Skipped] {
            assert_eq!(end.as_str().parse::<RunEnd>(), Ok(end));
        }
        assert_eq!(
            RunKind::try_from("backfill".to_string()),
            Err(UnknownWord {
                what: "run kind",
                word: "backfill".into()
            })
        );
        assert_eq!(RunKind::from(ResyncKind::Reconcile), RunKind::Reconcile);
    }
}
