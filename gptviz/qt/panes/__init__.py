"""One module a pane: tokens, attention, activations, training, generation. Panes keep no engine state:
they show the newest snapshot the main window hands them and emit signals for what the user asks."""
