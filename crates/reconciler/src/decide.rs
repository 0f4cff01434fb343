//! The controllers' decisions, as pure functions of the objects they read and the clock: the
//! VM controller's (`vm`: what to do about a VM's VMI) and the VMI controller's (`vmi`: what to
//! do about a VMI's launcher Pod). The controllers fetch, call these, and execute the answer.

pub mod vm;
pub mod vmi;
