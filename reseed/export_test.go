package reseed

var CheckRedoCarriedOver = checkRedoCarriedOver
