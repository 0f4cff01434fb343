//! What the VMI controller does about a VMI's launcher Pod (Part A §6), as a pure function.
