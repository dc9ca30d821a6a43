"""Write path: turn caller input (text, chat messages, speaker turns) into validated episodes."""
