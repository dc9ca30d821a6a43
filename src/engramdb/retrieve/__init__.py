"""Read path: hybrid candidate generation, fusion, and prompt-ready context assembly."""
