"""An example longline plugin: a transport, a processor and a store, added by entry points."""
