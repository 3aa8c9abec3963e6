"""Shape prior of the avatar (issue 27): evidence of real photos ' landmarks, empirical-Bayes calibration."""
