"""How long since the database was last proven restorable: the daily gauge behind the restore-test-overdue alarm."""
