package v2beta1

// MaxInUseErrors lets the external tests name the cap on in-use errors of a pool update.
const MaxInUseErrors = maxInUseErrors
