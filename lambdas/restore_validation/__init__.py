"""Placeholder until the restore-validation helper's package lands (see BACKUP.md); replaced on rebase."""
