"""fleetsim.serving"""
