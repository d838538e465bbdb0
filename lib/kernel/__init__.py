"""What every layer may use: settings, typed errors, log redaction, the words and moment
forms, garbage-collector tuning, the checks on library internals and the spreadsheet writer.
It imports the catalogue and libraries, never the store, the 8x8 client or a service."""
