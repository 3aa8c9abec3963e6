"""Energy terms of the non-rigid fitting (paper section 3.4): landmarks (eq. 1), corrective field
(eq. 2) and priors (eq. 3), each a plain function returning a residual vector."""
