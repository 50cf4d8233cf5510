"""fleetsim.sweep"""
