//! The Warehouse decider: created, updated, deactivated. A warehouse's `code` is unique across
//! the service; that uniqueness is enforced by a guard written in the same atomic commit as the
//! `WarehouseCreated` event, since no single aggregate can see every other warehouse.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::validate::{self, ADDRESS_MAX, CODE_MAX, NAME_MAX, REASON_MAX};
use super::{Aggregate, AggregateType, DomainError, DomainEvent};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseDetails {
    pub name: String,
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", content = "eventData")]
pub enum WarehouseEvent {
    #[serde(rename_all = "camelCase")]
    WarehouseCreated {
        code: String,
        name: String,
        address: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    WarehouseUpdated {
        previous: WarehouseDetails,
        new: WarehouseDetails,
    },
    #[serde(rename_all = "camelCase")]
    WarehouseDeactivated { reason: String },
}

impl DomainEvent for WarehouseEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::WarehouseCreated { .. } => "WarehouseCreated",
            Self::WarehouseUpdated { .. } => "WarehouseUpdated",
            Self::WarehouseDeactivated { .. } => "WarehouseDeactivated",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub exists: bool,
    pub code: String,
    pub details: WarehouseDetails,
    pub active: bool,
}

impl Aggregate for Warehouse {
    const TYPE: AggregateType = AggregateType::Warehouse;
    type Event = WarehouseEvent;

    fn evolve(&mut self, event: &WarehouseEvent) {
        match event {
            WarehouseEvent::WarehouseCreated {
                code,
                name,
                address,
            } => {
                self.exists = true;
                self.active = true;
                self.code = code.clone();
                self.details = WarehouseDetails {
                    name: name.clone(),
                    address: address.clone(),
                };
            }
            WarehouseEvent::WarehouseUpdated { new, .. } => self.details = new.clone(),
            WarehouseEvent::WarehouseDeactivated { .. } => self.active = false,
        }
    }
}

/// Serializable so that an idempotency key's fingerprint is the command itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum WarehouseCommand {
    CreateWarehouse {
        name: String,
        code: String,
        address: Option<String>,
    },
    UpdateWarehouse {
        name: Option<String>,
        address: Option<String>,
    },
    DeactivateWarehouse {
        reason: String,
    },
}

impl Warehouse {
    /// Fails unless the warehouse exists and is active: nothing new may be put in it otherwise.
    pub fn ensure_active(&self, id: Uuid, field: &'static str) -> Result<(), DomainError> {
        if !self.exists {
            return Err(DomainError::NotFound {
                entity: "warehouse",
                id: id.to_string(),
                field,
            });
        }
        if !self.active {
            return Err(DomainError::Inactive {
                entity: "warehouse",
                field,
            });
        }
        Ok(())
    }
}

pub fn decide(
    id: Uuid,
    state: &Warehouse,
    command: WarehouseCommand,
) -> Result<Vec<WarehouseEvent>, DomainError> {
    match command {
        WarehouseCommand::CreateWarehouse {
            name,
            code,
            address,
        } => {
            let name = validate::required_text("name", &name, NAME_MAX)?;
            let code = validate::code("code", &code, CODE_MAX)?.to_ascii_uppercase();
            let address = validate::optional_text("address", address.as_deref(), ADDRESS_MAX)?;
            if state.exists {
                return Err(DomainError::invalid("id", "warehouse already exists"));
            }
            Ok(vec![WarehouseEvent::WarehouseCreated {
                code,
                name,
                address,
            }])
        }
        WarehouseCommand::UpdateWarehouse { name, address } => {
            let name = match name {
                Some(name) => Some(validate::required_text("name", &name, NAME_MAX)?),
                None => None,
            };
            let address = match address {
                // An explicit empty address clears it.
                Some(address) => Some(validate::optional_text(
                    "address",
                    Some(&address),
                    ADDRESS_MAX,
                )?),
                None => None,
            };
            state.ensure_active(id, "id")?;
            let previous = state.details.clone();
            let new = WarehouseDetails {
                name: name.unwrap_or_else(|| previous.name.clone()),
                address: address.unwrap_or_else(|| previous.address.clone()),
            };
            if new == previous {
                return Ok(vec![]);
            }
            Ok(vec![WarehouseEvent::WarehouseUpdated { previous, new }])
        }
        WarehouseCommand::DeactivateWarehouse { reason } => {
            let reason = validate::required_text("reason", &reason, REASON_MAX)?;
            state.ensure_active(id, "id")?;
            Ok(vec![WarehouseEvent::WarehouseDeactivated { reason }])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::story::given;

    fn created() -> WarehouseEvent {
        WarehouseEvent::WarehouseCreated {
            code: "AMS1".into(),
            name: "Amsterdam".into(),
            address: None,
        }
    }

    fn run(
        events: Vec<WarehouseEvent>,
        command: WarehouseCommand,
    ) -> Result<Vec<WarehouseEvent>, DomainError> {
        let state = given::<Warehouse>(&events);
        decide(Uuid::nil(), &state.state, command)
    }

    #[test]
    fn creating_a_warehouse_normalises_its_code() {
        let events = run(
            vec![],
            WarehouseCommand::CreateWarehouse {
                name: " Amsterdam ".into(),
                code: "ams1".into(),
                address: Some("".into()),
            },
        );
        assert_eq!(events, Ok(vec![created()]));
    }

    #[test]
    fn a_warehouse_cannot_be_created_twice() {
        let result = run(
            vec![created()],
            WarehouseCommand::CreateWarehouse {
                name: "Again".into(),
                code: "AMS1".into(),
                address: None,
            },
        );
        assert_eq!(result.unwrap_err().code(), "INVALID_INPUT");
    }

    #[test]
    fn an_update_records_previous_and_new_details() {
        let events = run(
            vec![created()],
            WarehouseCommand::UpdateWarehouse {
                name: None,
                address: Some("Dock 4".into()),
            },
        );
        assert_eq!(
            events,
            Ok(vec![WarehouseEvent::WarehouseUpdated {
                previous: WarehouseDetails {
                    name: "Amsterdam".into(),
                    address: None
                },
                new: WarehouseDetails {
                    name: "Amsterdam".into(),
                    address: Some("Dock 4".into())
                },
            }])
        );
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        let events = run(
            vec![created()],
            WarehouseCommand::UpdateWarehouse {
                name: Some("Amsterdam".into()),
                address: None,
            },
        );
        assert_eq!(events, Ok(vec![]));
    }

    #[test]
    fn an_unknown_warehouse_is_not_found() {
        let result = run(
            vec![],
            WarehouseCommand::DeactivateWarehouse {
                reason: "closed".into(),
            },
        );
        assert_eq!(result.unwrap_err().code(), "NOT_FOUND");
    }

    #[test]
    fn an_inactive_warehouse_cannot_be_deactivated_or_updated() {
        let history = vec![
            created(),
            WarehouseEvent::WarehouseDeactivated {
                reason: "closed".into(),
            },
        ];
        let again = run(
            history.clone(),
            WarehouseCommand::DeactivateWarehouse {
                reason: "again".into(),
            },
        );
        assert_eq!(again.unwrap_err().code(), "INACTIVE");
        let update = run(
            history,
            WarehouseCommand::UpdateWarehouse {
                name: Some("New".into()),
                address: None,
            },
        );
        assert_eq!(update.unwrap_err().code(), "INACTIVE");
    }

    #[test]
    fn deactivation_needs_a_reason() {
        let result = run(
            vec![created()],
            WarehouseCommand::DeactivateWarehouse { reason: " ".into() },
        );
        assert_eq!(result.unwrap_err().field(), Some("reason"));
    }
}
