"""Workers: claim due sendings under a lease, deliver them, record every outcome."""
