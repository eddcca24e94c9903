// Backend-for-frontend controller: maps UI actions to cell actions for a customer product.
module.exports = function controller(router, appcell) {
  router.get('/fetch/:customerProductId', (req, res) =>
    appcell.call('fetch', req.params.customerProductId).then((r) => res.json(r)));
  router.post('/eppcode/:customerProductId', (req, res) =>
    appcell.call('getEppCode', req.params.customerProductId).then((r) => res.json(r)));
};
