// Product dashboard widget: shows the domain's status and name servers.
export default function mount(el, { product }) {
  el.textContent = `${product.options.domain}: ${product.status}`;
}
