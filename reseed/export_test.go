package reseed

var (
	CheckRedoCarriedOver = checkRedoCarriedOver
	RedoLSN              = redoLSN
)
