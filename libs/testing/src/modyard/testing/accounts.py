"""Look-alike Appmixer auth.js documents for the accounts tests (written for modyard, not copied)."""

from __future__ import annotations

#: An ``apiKey`` auth.js whose ``validate`` and profile ask the vendor's ``GET {baseUrl}/me`` with
#: the key as a bearer token; the account is named by the profile's ``user.email``.
API_KEY_AUTH_JS = """'use strict';
const profile = async (context) => {
    const response = await context.httpRequest({
        url: context.baseUrl + '/me',
        headers: { Authorization: 'Bearer ' + context.apiKey },
    });
    return response.data;
};
module.exports = {
    type: 'apiKey',
    definition: {
        auth: {
            apiKey: { type: 'text', name: 'API Key', tooltip: 'Settings > API' },
            baseUrl: { type: 'text', name: 'Base URL' },
        },
        accountNameFromProfileInfo: 'user.email',
        requestProfileInfo: profile,
        async validate(context) {
            await profile(context);
            return true;
        },
    },
};
"""
