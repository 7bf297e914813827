"""Dialogs and Processing widget wrappers: Designer .ui files with thin classes, no business logic."""
