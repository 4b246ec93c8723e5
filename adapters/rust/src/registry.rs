//! The named clients of one adapter process (a scenario may drive several).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::protocol::CommandError;
use crate::session::Session;

#[derive(Default)]
pub struct Registry {
    clients: Mutex<HashMap<String, Arc<Session>>>,
}

impl Registry {
    /// Registers a new client; `failed` if the name is taken.
    pub fn insert(&self, session: Arc<Session>) -> Result<(), CommandError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.contains_key(&session.name) {
            return Err(CommandError::failed(format!("client \"{}\" already exists", session.name)));
        }
        clients.insert(session.name.clone(), session);
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }

    pub fn get(&self, name: &str) -> Result<Arc<Session>, CommandError> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| CommandError::failed(format!("no client named \"{name}\" (connect it first)")))
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Session>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).remove(name)
    }

    /// Removes every client (to shut them all down).
    pub fn drain(&self) -> Vec<Arc<Session>> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect()
    }
}
