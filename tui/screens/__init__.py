"""Dashboard screens: the main panels, the unreachable-engine screen and the dialogs."""
