"""Space-debris simulation, detection and tracking (SDT-Net, Zhuang et al.)."""
