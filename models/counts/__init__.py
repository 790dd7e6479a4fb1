"""Count and zero-heavy outcomes (exports, patents).

* :mod:`.ppml` (registry key ``ppml``): Poisson pseudo-maximum likelihood with firm and
  year fixed effects (Santos Silva & Tenreyro 2006), static ``post`` and optional event-time
  dummies, percentage effect ``exp(b) - 1`` by the delta method.
* :mod:`.etwfe_poisson` (registry key ``etwfe_poisson``): Wooldridge (2023) extended TWFE
  with an exponential mean; ATT(g,t) on the level scale as average partial effects.
* :mod:`.separation`: Correia, Guimarães & Zylkin (2020/2021) separation checks (all-zero
  fixed-effect groups and the iterative-rectifier "ReLU" test for regressor separation).
* :mod:`.zeros`: :func:`log_zero_check` (Chen & Roth 2024) for log-like transforms of
  outcomes with zeros.
"""
