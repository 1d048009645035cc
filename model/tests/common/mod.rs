//! Helpers the step-by-step tests share: take one enabled step of the model, read a property.
//! Each test binary that includes this module uses some of them.
#![cfg(test)]
#![allow(dead_code)]

use e2e_model::world::World;
use e2e_model::{Action, E2eModel};
use stateright::Model;

/// The state after `action`, which must be enabled in `state` and change it.
pub fn step(model: &E2eModel, state: &World, action: Action) -> World {
    let mut enabled = Vec::new();
    model.actions(state, &mut enabled);
    assert!(enabled.contains(&action), "{action:?} not enabled");
    model.next_state(state, action.clone()).unwrap_or_else(|| panic!("{action:?} did nothing"))
}

/// The state after `actions` from the initial state, each enabled in turn.
pub fn run(model: &E2eModel, actions: &[Action]) -> World {
    let mut s = model.init_states().remove(0);
    for action in actions {
        s = step(model, &s, action.clone());
    }
    s
}

/// Whether property `name` of `model` holds in `s`.
pub fn holds(model: &E2eModel, s: &World, name: &str) -> bool {
    let properties = model.properties();
    let p = properties.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no {name}"));
    (p.condition)(model, s)
}
