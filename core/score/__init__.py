"""Score: proposals against ground truth (SpaceNet F1 for footprints, APLS for road graphs) and their reports."""
