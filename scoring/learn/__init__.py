"""Learning a scorecard from churn outcomes: which measures, which bands, which weights.

``healthscore fit`` proposes a whole card, not only weights. The steps, each its own module:

- :mod:`.candidates` — candidate measures in the scorecard's own YAML language (usage windows
  of 7, 30 and 90 days, per seat, days since, change against the prior window, account age,
  attributes and date fields, beside the card's own measures), read at each snapshot through
  the same point-in-time scorer as live runs;
- :mod:`.binning` — a monotone optimal binning of each candidate (optbinning), its bands'
  churn rates, weight of evidence and information value;
- :mod:`.select` — an information-value screen, then forward selection by held-out log loss
  of a logistic model with non-negative weights on the bands' points;
- :mod:`.card` — points per band scaled to 0–100 within each measure and measure weights from
  the model, so the card's score is the model's ranking;
- :mod:`.calibrate` — the score as a probability of churn within the horizon, and the
  expected against observed churn per decile.

Pure NumPy (plus optbinning for the binning): the store and the YAML file are the
backtest's business (``healthscore.backtest.learn``).
"""
