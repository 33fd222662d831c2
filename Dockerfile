# tiercache service image: one image, the role chosen by --mode. Node 26 is the active LTS (November 2026).
FROM node:26-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json codegen.ts ./
COPY schema ./schema
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:26-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/schema ./schema
COPY --from=build /app/src/pages ./src/pages
USER node
EXPOSE 4000
ENTRYPOINT ["node", "dist/main.js"]
CMD ["--mode=all", "--host=0.0.0.0", "--port=4000"]
