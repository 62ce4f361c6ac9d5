"""conrmodel: the CoNR UDP detector and collaborative renderer; training, evaluation, rendering."""

__version__ = "0.1.0"
