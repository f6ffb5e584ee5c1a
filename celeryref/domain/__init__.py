"""Plain business logic behind the domain tasks: no broker, unit-tested directly."""
