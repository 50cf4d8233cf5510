"""fleetsim.reliability"""
