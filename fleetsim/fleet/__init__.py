"""fleetsim.fleet"""
