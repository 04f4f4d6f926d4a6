"""Process entry points: each `main()` parses its settings, builds through bootstrap, runs."""
