"""Readers and writers: CTC layout, box prompts, track tables."""
