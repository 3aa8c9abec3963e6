"""Shape regressor (paper section 3.3): identity embedding -> decoder -> head vertices."""
