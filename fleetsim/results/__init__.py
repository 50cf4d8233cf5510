"""fleetsim.results"""
