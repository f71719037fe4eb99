//! An emulator of the Apache OpenWhisk controller and invoker, for tests.
