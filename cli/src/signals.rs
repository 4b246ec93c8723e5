//! SIGINT and SIGTERM for `serve` (shut down, then export `--state`) and `run` (stop the
//! adapters, write the reports).
/// SIGINT and SIGTERM, listened for from the moment this is made. Make it before telling
/// anyone the process is ready (serve's banner, the first adapter): a signal that arrives
/// between "ready" and the first poll would otherwise kill the process with the default action,
/// so `--state` would not be exported and reports not written.
pub(crate) struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Registers the handlers now. Must be called inside the tokio runtime. A handler that
    /// cannot be registered is logged and never fires (the default action then applies).
    pub(crate) fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let register = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, signal = name, "cannot listen for the signal");
                    None
                }
            };
            Signals {
                interrupt: register(SignalKind::interrupt(), "SIGINT"),
                terminate: register(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The first of them to arrive.
    async fn first(self) -> rehearsal_harness::Interruption {
        use rehearsal_harness::Interruption;
        #[cfg(unix)]
        {
            async fn next(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(self.interrupt) => Interruption::Interrupt,
                () = next(self.terminate) => Interruption::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            Interruption::Interrupt
        }
    }
}

/// `rehearsal run` cancels like a test runner on the first signal. The adapters run in their
/// own process groups, so a terminal's Ctrl-C reaches only this process, which must stop them.
pub(crate) async fn interruption(signals: Signals) -> rehearsal_harness::Interruption {
    let why = signals.first().await;
    eprintln!("rehearsal: {}: stopping the adapters and writing the reports", why.signal_name());
    why
}

/// `rehearsal serve` shuts down (within its deadline, then exports `--state`) on the first signal.
pub(crate) async fn shutdown_signal(signals: Signals) {
    signals.first().await;
    tracing::info!("shutting down");
}
