"""fleetsim.kernel"""
