"""longline's own provider sessions, written on the public ``longline.sessions`` interface as
a third party would write one (see docs/sessions.md)."""
