"""Storage engines behind one protocol per capability, chosen by URL scheme."""
